import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { createWriteBatcher } from '../write-batcher.ts'
import { settleDependents, type DependentsOutcome } from '../dependencies/dependency-transitions.ts'
import { hasDependentChanges, NO_DEPENDENTS, type DependentsDispatch } from '../dependencies/dependents-dispatch.ts'
import { createLifecycleBatchStatements, FINISH_ONE_ANY, finishParams, type ClaimInput, type FinishInput } from './lifecycle-batch-statements.ts'
import type { TaskError } from './task-view.ts'

// Every transition names the state and the attempt it expects. A duplicate delivery, a worker
// that lost its lock, or a late write after a cancel finds no matching row and changes nothing:
// that is what makes the recorded state exactly-once while execution is at-least-once.

const TASK_COLUMNS = `id, tenant, type, queue, status, priority, payload, result, error, progress, attempts,
  max_attempts as "maxAttempts", backoff, timeout_ms as "timeoutMs", run_at as "runAt",
  idempotency_key as "idempotencyKey", request_hash as "requestHash", worker_id as "workerId",
  cancel_requested_at as "cancelRequestedAt", created_at as "createdAt", started_at as "startedAt",
  finished_at as "finishedAt", updated_at as "updatedAt", dependency_count as "dependencyCount",
  blocked_count as "blockedCount", on_dependency_failure as "onDependencyFailure", has_dependents as "hasDependents"`

/** A cancelling statement's row, as the end it is for its dependents. */
const ended = (rows: TaskRow[]) => rows[0] && { value: rows[0], ended: { id: rows[0].id, status: 'cancelled' as const, hasDependents: rows[0].hasDependents } }

export type FinishOutcome = 'completed' | 'failed' | 'cancelled'

/**
 * `dependents` is told, after each commit that changed tasks depending on the one that ended,
 * what changed (to enqueue the ready ones and tell their streams).
 */
export function createTaskLifecycleRepository (sql: postgres.Sql, options: { dependents?: DependentsDispatch } = {}) {
  // JSON goes over the wire as text with an explicit ::jsonb cast: postgres.js picks a
  // serializer from the parameter type the server infers, which inside CTEs is not always jsonb.
  // Absent values stay SQL NULL (a JSON null would survive coalesce).
  const json = (value: unknown): string | null => (value == null ? null : JSON.stringify(value))
  // The claims and finishes of the attempts a worker runs at once share multi-row statements
  // (one round trip and one commit), each row keeping its own conditions.
  const batches = createLifecycleBatchStatements(sql)
  const claim = createWriteBatcher({ run: batches.claim, key: (i: ClaimInput) => i.taskId })
  const finish = createWriteBatcher({ run: batches.finish, key: (i: FinishInput) => i.taskId })

  /**
   * A transition that may end a task others depend on, in one transaction with what that does
   * to them: `end` changes the task and says which task ended how (or undefined: no change).
   */
  async function endingWithDependents<T> (end: (tx: postgres.TransactionSql) => Promise<{ value: T, ended?: { id: string, status: FinishOutcome, hasDependents: boolean } } | undefined>):
    Promise<T | undefined> {
    const { value, outcome } = await sql.begin(async (tx) => {
      const changed = await end(tx)
      if (!changed) return { value: undefined, outcome: NO_DEPENDENTS }
      const ended = changed.ended
      const outcome: DependentsOutcome = ended?.hasDependents ? await settleDependents(tx, [ended]) : NO_DEPENDENTS
      return { value: changed.value, outcome }
    })
    if (options.dependents && hasDependentChanges(outcome)) await options.dependents(outcome)
    return value
  }

  return {
    /**
     * Claims a task for an attempt: queued (or running on a worker that vanished) becomes
     * running with the next attempt number, and the attempt row is opened. Any attempt of this
     * task still marked running belonged to a worker that lost the job: it is closed as lost.
     * Returns undefined when the task is missing, terminal, or being cancelled.
     */
    start (taskId: string, workerId: string): Promise<TaskRow | undefined> {
      return claim({ taskId, workerId })
    },

    /**
     * Ends the attempt and the task; false when the task moved on without this worker. A task
     * others depend on (which the batched statement leaves alone) ends in a transaction that
     * also unblocks or fails its dependents.
     */
    async finish (taskId: string, attempt: number, outcome: FinishOutcome,
      fields: { result?: unknown, error?: TaskError | null, durationMs: number }): Promise<boolean> {
      const input = { taskId, attempt, outcome, ...fields }
      if (await finish(input)) return true
      const done = await endingWithDependents(async (tx) => {
        const [row] = await tx.unsafe<{ id: string, hasDependents: boolean }[]>(FINISH_ONE_ANY, finishParams(input) as never[])
        return row && { value: true, ended: { id: taskId, status: outcome, hasDependents: row.hasDependents } }
      })
      return done ?? false
    },

    /** The attempt failed with attempts left: back to queued, due again at `runAt`. */
    async scheduleRetry (taskId: string, attempt: number,
      fields: { error: TaskError, runAt: Date, durationMs: number }): Promise<boolean> {
      const rows = await sql`
        with retried as (
          update tasks set status = 'queued', error = ${json(fields.error)}::jsonb, run_at = ${fields.runAt.toISOString()}::timestamptz,
                 updated_at = now()
          where id = ${taskId} and status = 'running' and attempts = ${attempt}
          returning id
        )
        update task_attempts set outcome = 'failed', finished_at = now(), duration_ms = ${fields.durationMs},
               error = ${json(fields.error)}::jsonb
        where task_id = (select id from retried) and attempt = ${attempt}
        returning task_id`
      return rows.length > 0
    },

    /**
     * The handler stopped because a client cancelled: records `cancelled` (never a retry),
     * but only when a cancel was really requested, so an abort for another reason falls
     * through to the ordinary failure path.
     */
    finishCancelled (taskId: string, attempt: number, fields: { durationMs: number }): Promise<TaskRow | undefined> {
      return endingWithDependents(async (tx) => ended(await tx.unsafe<TaskRow[]>(`
        with cancelled as (
          update tasks set status = 'cancelled', finished_at = now(), updated_at = now()
          where id = $1 and status = 'running' and attempts = $2 and cancel_requested_at is not null
          returning *
        ), closed as (
          update task_attempts set outcome = 'cancelled', finished_at = now(), duration_ms = $3
          where task_id = (select id from cancelled) and attempt = $2
        )
        select ${TASK_COLUMNS} from cancelled`, [taskId, attempt, fields.durationMs])))
    },

    /**
     * A job was delivered for a task whose cancel was requested while no worker could hear it
     * (or whose worker vanished): the task ends cancelled instead of staying unfinished.
     */
    settleCancelRequested (taskId: string): Promise<TaskRow | undefined> {
      return endingWithDependents(async (tx) => ended(await tx.unsafe<TaskRow[]>(`
        with cancelled as (
          update tasks set status = 'cancelled', finished_at = now(), updated_at = now()
          where id = $1 and status in ('queued', 'running') and cancel_requested_at is not null
          returning *
        ), closed as (
          update task_attempts a set outcome = 'cancelled', finished_at = now(),
                 duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int
          from cancelled c where a.task_id = c.id and a.outcome = 'running'
        )
        select ${TASK_COLUMNS} from cancelled`, [taskId])))
    },

    async setProgress (taskId: string, attempt: number, progress: unknown): Promise<boolean> {
      const rows = await sql`
        update tasks set progress = ${json(progress)}::jsonb, updated_at = now()
        where id = ${taskId} and status = 'running' and attempts = ${attempt}
        returning id`
      return rows.length > 0
    },
  }
}

export type TaskLifecycleRepository = ReturnType<typeof createTaskLifecycleRepository>
