import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { recountBlocked, reviveDependents, type FinishedTask } from '../dependencies/dependency-transitions.ts'
import { NO_DEPENDENTS, type DependentsDispatch } from '../dependencies/dependents-dispatch.ts'
import { createDependentsTransaction, retryOnDeadlock } from '../dependencies/dependents-transaction.ts'
import { TaskConflictError } from '../errors.ts'
import { createWriteBatcher } from '../write-batcher.ts'
import { createFailAttempt, type AttemptFailure, type FailingTask, type FailOutcome } from './attempt-outcome.ts'
export { createFailAttempt, type AttemptFailure, type FailOutcome } from './attempt-outcome.ts'
import { createTransitionBatchStatements, type ClaimInput, type ClaimOutcome, type DispatchedRow, type FinishInput } from './transition-batch-statements.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import { createLeaseStatements, type LeaseEnd, type LeaseEnding, type LeaseScope } from './lease-statements.ts'
import { ALLOWED_FROM } from './task-states.ts'
import type { TaskError } from './task-view.ts'
import { owedNotificationsCte } from '../notifications/owed-notifications.ts'

// Every change of a task's state, and of its attempts, is one of the transitions below: the
// in-process runner, the pull and callback routes, the reconciler and the client's cancel,
// retry and delete all come here. Each names the state and the attempt it expects, so a
// duplicate delivery, a worker that lost its lock, or a late write after a cancel matches no
// row and changes nothing: that is what keeps the recorded state exactly-once while
// execution is at-least-once. A transition that matched nothing answers false or undefined,
// and its caller then counts and logs nothing.

/** What the reconciler needs to look a task's job up in Redis and enqueue it again. */
export type UnfinishedTask = Pick<TaskRow, 'id' | 'queue' | 'type' | 'priority' | 'runAt' | 'maxAttempts' | 'attempts'>
export type { ClaimOutcome } from './transition-batch-statements.ts'

const UNFINISHED_COLUMNS = `id, queue, type, priority, run_at as "runAt", max_attempts as "maxAttempts", attempts`
const withDate = (row: UnfinishedTask): UnfinishedTask => ({ ...row, runAt: new Date(row.runAt) })
// JSON goes over the wire as text with an explicit ::jsonb cast: postgres.js picks a
// serializer from the parameter type the server infers, which inside CTEs is not always jsonb.
const json = (value: unknown): string | null => (value == null ? null : JSON.stringify(value))
const LOST_ERROR = `'{"message":"the worker running this attempt stopped","code":"WORKER_LOST"}'`

export type { DispatchedRow } from './transition-batch-statements.ts'
/**
 * Told, after the commit, about tasks that have left BullMQ for good: their dispatch slots are
 * free. A promise is awaited where dependents may take the slots next, and nowhere else.
 */
export type OnLeft = (tasks: readonly { tenant: string, queue: string }[]) => Promise<void> | void

/**
 * Whether a task moved by a transition held a dispatch slot and no longer does: it ended, and
 * it had been in BullMQ (not held back by fair sharing, not waiting for a dependency). A retry,
 * a lost worker's requeue and a shutdown's release keep the slot: the task's job stays.
 */
export const hasLeftDispatch = (row: DispatchedRow): boolean =>
  row.status !== 'queued' && row.status !== 'running' && !row.held && row.blockedCount === 0

/**
 * `dependents` is told, once a transaction that changed tasks depending on the one it ended
 * (or retried) has committed, what changed: it enqueues those now ready and tells their
 * streams. A process that dies before it does leaves ready queued tasks without a job, which
 * the reconciler enqueues.
 *
 * `onLeft` is the one exit of every ending transition (fair sharing frees the slots there):
 * each transition that may end a task passes the rows it moved to `left` once committed, so an
 * executor kind added later gets the release by ending its tasks through a transition here.
 */
export function createTaskTransitions (sql: postgres.Sql, options: { maxLostAttempts: number, dependents?: DependentsDispatch, onLeft?: OnLeft | undefined }) {
  async function left (rows: readonly (DispatchedRow | undefined)[]): Promise<void> {
    if (!options.onLeft) return
    const gone = rows.filter((row): row is DispatchedRow => row !== undefined && hasLeftDispatch(row))
    if (gone.length > 0) await options.onLeft(gone)
  }
  // The claims and finishes of the attempts a process runs at once share multi-row statements
  // (one round trip and one commit), each row keeping its own conditions.
  const batches = createTransitionBatchStatements(sql, { maxLostAttempts: options.maxLostAttempts, left: (rows) => void left(rows) })
  const claimBatched = createWriteBatcher({ run: batches.claim, key: (i: ClaimInput) => i.taskId })
  const finishBatched = createWriteBatcher({ run: batches.finish, key: (i: FinishInput) => i.taskId })
  const leases = createLeaseStatements(sql)
  // Lease endings that arrive together (a pull worker's completes, callbacks) share one
  // statement, as in-process finishes do; a lease id is Postgres' uuid, whatever its case.
  // The statement locks rows in a fixed order, but a deadlock aborts all of it, so it is safe to run again.
  const endLeaseBatched = createWriteBatcher({
    run: (inputs: LeaseEnd[]) => retryOnDeadlock(() => leases.endWithoutDependents(inputs)),
    key: (i: LeaseEnd) => i.leaseId.toLowerCase(),
  })

  async function one (text: string, params: unknown[], tx: Pick<postgres.Sql, 'unsafe'> = sql): Promise<TaskRow | undefined> {
    const rows = await tx.unsafe(text, params as never[])
    return rows[0] ? toTaskRow(rows[0]) : undefined
  }

  // Every transaction that may end a task reports the rows it moved to `left` once committed.
  const withDependents = createDependentsTransaction(sql, options.dependents, left)
  const endedIfDependents = (row: TaskRow | undefined) =>
    ({ value: row, moved: [row], ended: row?.hasDependents ? { id: row.id, status: row.status as FinishedTask['status'] } : undefined })

  /** The batched finish, or (for a task others depend on, which it leaves alone) the finish with its dependents. */
  async function finish (input: FinishInput & { hasDependents?: boolean }): Promise<boolean> {
    if (!input.hasDependents && await finishBatched(input)) return true
    return withDependents(async (tx) => {
      const row = await batches.finishOne(tx, input)
      return { value: row !== undefined, moved: [row], ended: row?.hasDependents ? { id: input.taskId, status: input.outcome } : undefined }
    })
  }

  const transitions = {
    /**
     * A pull worker's leases (lease-statements.ts): queued tasks of the tenant whose jobs a
     * lease request took become running, each on a new attempt held by its lease
     * (tasks.lease_id), which expires unless extended. One statement for the request.
     */
    claimLeases: (...args: Parameters<typeof leases.claim>) => retryOnDeadlock(() => leases.claim(...args)),
    /** Extends a live lease, never past the attempt's deadline, and records progress. */
    extendLease: leases.extend,
    /**
     * Ends a lease and its attempt and moves the task: completed, failed, queued for a retry,
     * or cancelled. `scope` says whether the lease must be live (a worker's call), expired
     * (the sweeper: the attempt is lost, or timed out past its deadline) or either (a cancel).
     */
    endLease: async (tenant: string, leaseId: string, scope: LeaseScope, ending: LeaseEnding): Promise<TaskRow | undefined> => {
      // Most tasks have no dependents: their end is one statement, outside a transaction.
      const row = await endLeaseBatched({ tenant, leaseId, scope, ending })
      if (row) {
        await left([row])
        return row
      }
      // The task has dependents (or the lease did not match, which the transaction finds
      // again): in the transaction that settles what depends on it, when it ended for good.
      return withDependents(async (tx) => {
        const row = await leases.end({ tenant, leaseId, scope, ending }, tx)
        return row?.status === 'queued' || row?.status === 'running' ? { value: row } : endedIfDependents(row)
      })
    },
    /**
     * A webhook attempt's callback window: a lease on the attempt (the claim's lease id, so it
     * is fenced like a pull worker's) that callbacks end, or the lease sweeper at the deadline.
     * It opens before the request is sent, since a receiver may call back before it answers.
     */
    openCallbackLease: leases.openCallback,
    callbackLease: leases.callbackLease,
    /** Leases past their expiry that the sweeper has not ended yet. */
    expiredLeases: leases.listExpired,
    closeLease: leases.close,
    openLeaseOf: leases.openLeaseOf,

    /**
     * Queued (or running on a worker that vanished) becomes running with the next attempt,
     * held by `leaseId`. Undefined when the task is missing, terminal or being cancelled;
     * `worker_lost` when the task has lost its worker too often and ended failed instead.
     * Running the same claim again (same lease id) answers the attempt it opened.
     */
    claim (input: ClaimInput): Promise<ClaimOutcome | undefined> {
      return claimBatched(input)
    },

    /**
     * The attempt produced its result: the task is completed. False when it moved on without this attempt.
     * `hasDependents` (as the claim saw it) skips the batched statement, which would leave such a task alone.
     */
    complete (taskId: string, attempt: number, fields: { result: unknown, durationMs: number, leaseId?: string | null, hasDependents?: boolean }): Promise<boolean> {
      return finish({ taskId, attempt, outcome: 'completed', ...fields })
    },

    /** The attempt failed and no retry follows: the task is failed. */
    fail (taskId: string, attempt: number, fields: { error: TaskError, durationMs: number, leaseId?: string | null }): Promise<boolean> {
      return finish({ taskId, attempt, outcome: 'failed', ...fields })
    },

    /** The attempt failed with attempts left: back to queued, due again at `runAt`. */
    async scheduleRetry (taskId: string, attempt: number,
      fields: { error: TaskError, runAt: Date, durationMs: number, leaseId?: string | null }): Promise<boolean> {
      const rows = await sql.unsafe(`
        with retried as (
          update tasks set status = 'queued', error = $3::jsonb, run_at = $4::timestamptz, worker_id = null, updated_at = now()
          where id = $1 and status = 'running' and attempts = $2 and ($6::uuid is null or lease_id = $6::uuid)
          returning id
        )
        update task_attempts set outcome = 'failed', finished_at = now(), duration_ms = $5, error = $3::jsonb
        where task_id = (select id from retried) and attempt = $2
        returning task_id`, [taskId, attempt, json(fields.error), fields.runAt.toISOString(), fields.durationMs, fields.leaseId ?? null])
      return rows.length > 0
    },

    /**
     * A failed attempt, retried or failed as decideFailure says for this task. Undefined when
     * the task moved on without this attempt (nothing was written).
     */
    failAttempt: (task: FailingTask, failure: AttemptFailure): Promise<FailOutcome | undefined> => createFailAttempt(transitions)(task, failure),

    /**
     * The attempt stopped because a client cancelled: records `cancelled` (never a retry), but
     * only when a cancel was really requested, so an abort for another reason falls through to
     * the ordinary failure path.
     */
    finishCancelled (taskId: string, attempt: number, fields: { durationMs: number }): Promise<TaskRow | undefined> {
      return withDependents(async (tx) => endedIfDependents(await one(`
        with cancelled as (
          update tasks set status = 'cancelled', finished_at = now(), updated_at = now()
          where id = $1 and status = 'running' and attempts = $2 and cancel_requested_at is not null
          returning *
        ), closed as (
          update task_attempts set outcome = 'cancelled', finished_at = now(), duration_ms = $3
          where task_id = (select id from cancelled) and attempt = $2
        ), ${owedNotificationsCte('cancelled')}
        select ${TASK_RETURNING} from cancelled`, [taskId, attempt, fields.durationMs], tx)))
    },

    /**
     * A job was delivered for a task whose cancel was requested while no worker could hear it
     * (or whose worker vanished): the task ends cancelled instead of staying unfinished.
     */
    settleCancelRequested (taskId: string): Promise<TaskRow | undefined> {
      return withDependents(async (tx) => endedIfDependents(await one(`
        with cancelled as (
          update tasks set status = 'cancelled', finished_at = now(), updated_at = now()
          where id = $1 and status in ('queued', 'running') and cancel_requested_at is not null
          returning *
        ), closed as (
          update task_attempts a set outcome = 'cancelled', finished_at = now(),
                 duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int
          from cancelled c where a.task_id = c.id and a.outcome = 'running'
        ), ${owedNotificationsCte('cancelled')}
        select ${TASK_RETURNING} from cancelled`, [taskId], tx)))
    },

    async setProgress (taskId: string, attempt: number, progress: unknown): Promise<boolean> {
      const rows = await sql.unsafe(`
        update tasks set progress = $3::jsonb, updated_at = now()
        where id = $1 and status = 'running' and attempts = $2
        returning id`, [taskId, attempt, json(progress)])
      return rows.length > 0
    },

    /**
     * A stopping worker gives back an attempt it cannot finish within its grace period: the
     * task is queued again at once and the attempt is closed as released (not counted as lost).
     */
    async release (taskId: string, attempt: number, durationMs: number): Promise<boolean> {
      const rows = await sql.unsafe(`
        with released as (
          update tasks set status = 'queued', worker_id = null, updated_at = now()
          where id = $1 and status = 'running' and attempts = $2
          returning id
        )
        update task_attempts set outcome = 'released', finished_at = now(), duration_ms = $3,
               error = '{"message":"the worker stopped before this attempt finished; the task was queued again","code":"WORKER_SHUTDOWN"}'
        where task_id = (select id from released) and attempt = $2
        returning task_id`, [taskId, attempt, durationMs])
      return rows.length > 0
    },

    /**
     * A running task whose worker is gone (its job vanished or ended in Redis, untouched for
     * `olderThanMs`): the attempt is closed as lost and the task goes back to queued, or ends
     * failed when it has lost its worker TASKLANE_MAX_LOST_ATTEMPTS times.
     */
    async requeueLost (taskId: string, attempt: number, olderThanMs: number): Promise<{ outcome: 'requeued', task: UnfinishedTask } | { outcome: 'worker_lost' } | undefined> {
      const rows = await withDependents(async (tx) => {
        const rows = await tx.unsafe<(UnfinishedTask & DispatchedRow & { hasDependents: boolean })[]>(`
        with requeued as (
          update tasks set
            status = case when lost_attempts + 1 >= $4 then 'failed' else 'queued' end,
            finished_at = case when lost_attempts + 1 >= $4 then now() end,
            error = case when lost_attempts + 1 >= $4
              then '{"message":"every attempt allowed to end with its worker lost did so; the task may crash or exhaust its worker","code":"WORKER_LOST"}'::jsonb
              else error end,
            lost_attempts = lost_attempts + 1, worker_id = null, updated_at = now()
          where id = $1 and status = 'running' and attempts = $2
            and updated_at < now() - make_interval(secs => $3::double precision / 1000)
          returning *
        ), lost as (
          update task_attempts a set outcome = 'lost', finished_at = now(),
                 duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int, error = ${LOST_ERROR}::jsonb
          from requeued r where a.task_id = r.id and a.outcome = 'running'
        ), ${owedNotificationsCte('requeued')}
        select ${UNFINISHED_COLUMNS}, status, has_dependents as "hasDependents", tenant, held, blocked_count as "blockedCount" from requeued`, [taskId, attempt, olderThanMs, options.maxLostAttempts])
        const gaveUp = rows[0]?.status === 'failed' && rows[0].hasDependents
        return { value: rows, moved: rows, ended: gaveUp ? { id: taskId, status: 'failed' as const } : undefined }
      })
      const row = rows[0]
      if (!row) return undefined
      if (row.status === 'failed') return { outcome: 'worker_lost' }
      const { status: _status, hasDependents: _hasDependents, tenant: _tenant, held: _held, blockedCount: _blocked, ...task } = row
      return { outcome: 'requeued', task: withDate(task) }
    },

    /**
     * The client's cancel: a queued task becomes cancelled at once; a running one only gets
     * cancel_requested_at, and the executor running it records `cancelled` when it has stopped.
     * The row lock orders this against a claim, which skips tasks with a cancel request.
     */
    cancel (tenant: string, id: string): Promise<TaskRow | undefined> {
      // The outbox reads the row as it was before this statement, so only the cancel that
      // ended a queued task owes a notification (a running one owes it when its executor stops).
      return withDependents(async (tx) => {
        const row = await one(`
        with cancelled as (
          update tasks set status = case when status = 'queued' then 'cancelled' else status end,
                 finished_at = case when status = 'queued' then now() else finished_at end,
                 cancel_requested_at = coalesce(cancel_requested_at, now()), updated_at = now()
          where tenant = $1 and id = $2 and status = any($3::text[])
          returning *
        ), ${owedNotificationsCte('cancelled', "exists (select 1 from tasks b where b.id = s.id and b.status = 'queued')")}
        select ${TASK_RETURNING} from cancelled`, [tenant, id, ALLOWED_FROM.cancel], tx)
        // Only a task cancelled at once has ended; a running one ends when its executor stops.
        return row?.status === 'cancelled' ? endedIfDependents(row) : { value: row }
      })
    },

    /**
     * The client's retry: failed or cancelled back to queued with a fresh attempt budget.
     * Attempt numbers keep counting (the history stays whole), so the budget moves up:
     * `maxAttempts - attemptBase` attempts again, and the lost-worker count starts over.
     * A task with dependencies waits again for those not completed (one whose failed dependency
     * would fail it at once is a conflict: retry that one first); dependents the failure had
     * failed come back to waiting, in the same transaction. The task comes back not held, with
     * no dispatch slot: the caller dispatches it through fair sharing's admission.
     */
    async retry (tenant: string, id: string): Promise<TaskRow | undefined> {
      const { row, revived } = await retryOnDeadlock(() => sql.begin(async (tx) => {
        const row = await one(`
          update tasks set status = 'queued', held = false, max_attempts = attempts + (max_attempts - attempt_base),
                 attempt_base = attempts, lost_attempts = 0, cancel_requested_at = null, result = null, progress = null,
                 worker_id = null, finished_at = null, run_at = now(), updated_at = now()
          where tenant = $1 and id = $2 and status = any($3::text[])
          returning ${TASK_RETURNING}`, [tenant, id, ALLOWED_FROM.retry], tx)
        if (!row) return { row, revived: [] }
        if (row.dependencyCount > 0) {
          const { blockedCount, doomed } = await recountBlocked(tx, id)
          if (doomed) throw new TaskConflictError('A dependency of this task is failed or cancelled; retry that one first (its dependents come back with it)')
          row.blockedCount = blockedCount
        }
        return { row, revived: row.hasDependents ? await reviveDependents(tx, [id]) : [] }
      }))
      if (options.dependents && revived.length > 0) {
        await options.dependents({ ...NO_DEPENDENTS, waiting: revived.map((r) => ({ id: r.id, blockedCount: r.blockedCount })) })
      }
      return row
    },

    /**
     * The admission loop's dispatch of held tasks: up to `quota[tenant]` of each tenant's held
     * tasks of the queue that are due, highest priority then oldest first, stop being held.
     * The caller has reserved their slots and enqueues what this returns.
     */
    async admit (queue: string, quota: ReadonlyMap<string, number>): Promise<(UnfinishedTask & { tenant: string })[]> {
      if (quota.size === 0) return []
      const rows = await sql.unsafe<(UnfinishedTask & { tenant: string })[]>(`
        with quota as (
          select * from unnest($2::text[], $3::int[]) as q(tenant, n)
        ), picked as (
          select p.id from quota q cross join lateral (
            select t.id from tasks t
            where t.queue = $1 and t.tenant = q.tenant and t.held and t.status = 'queued' and t.blocked_count = 0
              and t.run_at <= now() + interval '1 second'
            order by (case t.priority when 'critical' then 0 when 'high' then 1 when 'normal' then 2 else 3 end), t.id
            limit q.n
          ) p
        )
        update tasks t set held = false, updated_at = now()
        from picked p where t.id = p.id and t.held and t.status = 'queued'
        returning t.id, t.queue, t.type, t.priority, t.run_at as "runAt", t.max_attempts as "maxAttempts", t.attempts, t.tenant`,
      [queue, [...quota.keys()], [...quota.values()]])
      return rows.map((row) => ({ ...withDate(row), tenant: row.tenant }))
    },

    /**
     * Queued tasks, stored or made ready outside the create path (a schedule's, a dependency's
     * release, a client's retry), that got no dispatch slot: they wait held, for the admission
     * loop. Answers the ids that were held (a task that moved on meanwhile is left alone).
     */
    async hold (ids: readonly string[]): Promise<string[]> {
      if (ids.length === 0) return []
      const rows = await sql.unsafe<{ id: string }[]>(`
        update tasks set held = true, updated_at = now()
        where id = any($1::uuid[]) and status = 'queued' and not held and blocked_count = 0
        returning id`, [ids])
      return rows.map((r) => r.id)
    },

    /** The client's delete of a terminal task; its attempts go with it (foreign key cascade). */
    async delete (tenant: string, id: string): Promise<boolean> {
      const rows = await sql.unsafe(`
        delete from tasks where tenant = $1 and id = $2 and status = any($3::text[])
        returning id`, [tenant, id, ALLOWED_FROM.delete])
      return rows.length > 0
    },
  }
  return transitions
}

export type TaskTransitions = ReturnType<typeof createTaskTransitions>
