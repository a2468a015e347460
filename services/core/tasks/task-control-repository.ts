import { and, eq, inArray, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { taskCounts, tasks, type TaskRow } from '../db/schema.ts'
import { ALLOWED_FROM } from './task-states.ts'
import type { TaskStatus } from './task-view.ts'

/**
 * The client's state changes (cancel, retry, delete), each one conditional update scoped by
 * tenant whose WHERE clause is the rule from task-states.ts. An update that matches nothing
 * means "missing or in the wrong state"; the caller reads the row to tell which.
 */
export function createTaskControlRepository (db: Db) {
  const mine = (tenant: string, id: string) => and(eq(tasks.tenant, tenant), eq(tasks.id, id))

  return {
    /**
     * A queued task becomes cancelled at once; a running one only gets cancel_requested_at,
     * and the worker running it records `cancelled` when its handler has stopped. The row lock
     * orders this against a worker's claim, which skips tasks with a cancel request.
     */
    async cancel (tenant: string, id: string): Promise<TaskRow | undefined> {
      const [row] = await db.update(tasks).set({
        status: sql`case when ${tasks.status} = 'queued' then 'cancelled' else ${tasks.status} end`,
        finishedAt: sql`case when ${tasks.status} = 'queued' then now() else ${tasks.finishedAt} end`,
        cancelRequestedAt: sql`coalesce(${tasks.cancelRequestedAt}, now())`,
        updatedAt: sql`now()`,
      }).where(and(mine(tenant, id), inArray(tasks.status, [...ALLOWED_FROM.cancel]))).returning()
      return row
    },

    /**
     * Back to queued with a fresh attempt budget. Attempt numbers keep counting (the attempt
     * history stays whole), so the budget is moved up: `maxAttempts - attemptBase` attempts again.
     */
    async retry (tenant: string, id: string): Promise<TaskRow | undefined> {
      const [row] = await db.update(tasks).set({
        status: 'queued',
        maxAttempts: sql`${tasks.attempts} + (${tasks.maxAttempts} - ${tasks.attemptBase})`,
        attemptBase: sql`${tasks.attempts}`,
        cancelRequestedAt: null,
        result: null,
        progress: null,
        workerId: null,
        finishedAt: null,
        runAt: sql`now()`,
        updatedAt: sql`now()`,
      }).where(and(mine(tenant, id), inArray(tasks.status, [...ALLOWED_FROM.retry]))).returning()
      return row
    },

    /** Deletes a terminal task; its attempts go with it (foreign key cascade). */
    async delete (tenant: string, id: string): Promise<boolean> {
      const rows = await db.delete(tasks)
        .where(and(mine(tenant, id), inArray(tasks.status, [...ALLOWED_FROM.delete]))).returning({ id: tasks.id })
      return rows.length > 0
    },

    async status (tenant: string, id: string): Promise<TaskStatus | undefined> {
      const [row] = await db.select({ status: tasks.status }).from(tasks).where(mine(tenant, id)).limit(1)
      return row?.status
    },

    /**
     * Task counts of one tenant by status and type, from the counters the tasks table's
     * triggers keep with every write (exact, and a few rows to read whatever the tenant's size).
     */
    async countByStatusAndType (tenant: string): Promise<{ status: TaskStatus, type: string, count: number }[]> {
      const count = sql<number>`sum(${taskCounts.count})::int`
      return db.select({ status: taskCounts.status, type: taskCounts.type, count })
        .from(taskCounts).where(eq(taskCounts.tenant, tenant))
        .groupBy(taskCounts.status, taskCounts.type).having(sql`${count} <> 0`)
    },
  }
}

export type TaskControlRepository = ReturnType<typeof createTaskControlRepository>
