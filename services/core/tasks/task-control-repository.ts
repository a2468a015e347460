import { and, eq, inArray, sql } from 'drizzle-orm'
import type postgres from 'postgres'
import type { Db } from '../db/db-client.ts'
import { tasks, type TaskRow } from '../db/schema.ts'
import { recountBlocked, reviveDependents, settleDependents, type DependentsOutcome } from '../dependencies/dependency-transitions.ts'
import { NO_DEPENDENTS } from '../dependencies/dependents-dispatch.ts'
import { TaskConflictError } from '../errors.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import { ALLOWED_FROM } from './task-states.ts'
import type { TaskStatus } from './task-view.ts'

const CANCEL = `
  update tasks set status = case when status = 'queued' then 'cancelled' else status end,
         finished_at = case when status = 'queued' then now() else finished_at end,
         cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
  where tenant = $1 and id = $2 and status = any($3::text[])
  returning ${TASK_RETURNING}`

const RETRY = `
  update tasks set status = 'queued', max_attempts = attempts + (max_attempts - attempt_base), attempt_base = attempts,
         cancel_requested_at = null, result = null, progress = null, worker_id = null, finished_at = null,
         run_at = now(), updated_at = now()
  where tenant = $1 and id = $2 and status = any($3::text[])
  returning ${TASK_RETURNING}`

/**
 * The client's state changes (cancel, retry, delete), each one conditional update scoped by
 * tenant whose WHERE clause is the rule from task-states.ts. An update that matches nothing
 * means "missing or in the wrong state"; the caller reads the row to tell which.
 */
export function createTaskControlRepository (db: Db) {
  const mine = (tenant: string, id: string) => and(eq(tasks.tenant, tenant), eq(tasks.id, id))
  const client = (db as Db & { $client: postgres.Sql }).$client

  return {
    /**
     * A queued task becomes cancelled at once (and its dependents follow their policies, in the
     * same transaction); a running one only gets cancel_requested_at, and the worker running it
     * records `cancelled` when its handler has stopped. The row lock orders this against a
     * worker's claim, which skips tasks with a cancel request.
     */
    async cancel (tenant: string, id: string): Promise<{ row: TaskRow, dependents: DependentsOutcome } | undefined> {
      return client.begin(async (tx) => {
        const [raw] = await tx.unsafe(CANCEL, [tenant, id, [...ALLOWED_FROM.cancel]])
        if (!raw) return undefined
        const row = toTaskRow(raw)
        const dependents = row.status === 'cancelled' && row.hasDependents
          ? await settleDependents(tx, [{ id, status: 'cancelled' }])
          : NO_DEPENDENTS
        return { row, dependents }
      })
    },

    /**
     * Back to queued with a fresh attempt budget. Attempt numbers keep counting (the attempt
     * history stays whole), so the budget is moved up: `maxAttempts - attemptBase` attempts again.
     * A task with dependencies waits for those not completed again; one whose failed dependency
     * would fail it at once is a conflict (retry that one first). Dependents the failure or
     * cancel had failed come back to waiting, in the same transaction.
     */
    async retry (tenant: string, id: string): Promise<{ row: TaskRow, revived: TaskRow[] } | undefined> {
      return client.begin(async (tx) => {
        const [raw] = await tx.unsafe(RETRY, [tenant, id, [...ALLOWED_FROM.retry]])
        if (!raw) return undefined
        const row = toTaskRow(raw)
        if (row.dependencyCount > 0) {
          const { blockedCount, doomed } = await recountBlocked(tx, id)
          if (doomed) throw new TaskConflictError('A dependency of this task is failed or cancelled; retry that one first (its dependents come back with it)')
          row.blockedCount = blockedCount
        }
        const revived = row.hasDependents ? await reviveDependents(tx, [id]) : []
        return { row, revived }
      })
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

    /** Task counts of one tenant by status and type. */
    async countByStatusAndType (tenant: string): Promise<{ status: TaskStatus, type: string, count: number }[]> {
      return db.select({ status: tasks.status, type: tasks.type, count: sql<number>`count(*)::int` })
        .from(tasks).where(eq(tasks.tenant, tenant)).groupBy(tasks.status, tasks.type)
    },
  }
}

export type TaskControlRepository = ReturnType<typeof createTaskControlRepository>
