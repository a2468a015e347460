import { and, eq, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { taskCounts, tasks } from '../db/schema.ts'
import type { TaskStatus } from './task-view.ts'

/**
 * What the client's cancel, retry and delete read besides the transitions themselves: a
 * task's status (to tell 404 from 409 when a transition matched nothing) and the stats.
 */
export function createTaskControlRepository (db: Db) {
  const mine = (tenant: string, id: string) => and(eq(tasks.tenant, tenant), eq(tasks.id, id))

  return {
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
