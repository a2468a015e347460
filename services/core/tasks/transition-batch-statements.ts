import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, taskReturningOf, toTaskRow } from './task-row-mapper.ts'
import type { TaskError } from './task-view.ts'
import { owedNotificationsCte } from '../notifications/owed-notifications.ts'

// The two per-attempt writes every executor makes (claim and finish) as multi-row statements,
// so that the attempts a worker runs at the same time share a statement, a round trip and a
// commit. The conditions are the single-row ones, row by row: a row that does not match is
// left alone and its caller hears "no". transitions.ts is their only caller.
//
// Several inputs travel as typed arrays expanded with unnest, and that statement is planned
// on each run (not prepared): the planner then knows how many rows come in and how big the
// tasks table is now, and probes the primary key once per row. A plan cached while the table
// was small, or one trusting stale statistics, would scan every unfinished task for each
// batch, which under a backlog costs more than batching saves. A single input (light load)
// uses the same statement over a one-row input, prepared: a one-row outer side always plans
// as a primary-key probe, and planning would cost more than the statement itself.

export type ClaimInput = { taskId: string, workerId: string, leaseId: string }
export type ClaimOutcome = { outcome: 'claimed', task: TaskRow } | { outcome: 'worker_lost', task: TaskRow }
/** A task as the dispatch window sees it: which slot it holds, and whether it still does. */
export type DispatchedRow = Pick<TaskRow, 'tenant' | 'queue' | 'status' | 'held' | 'blockedCount'>
export type FinishedRow = DispatchedRow & { id: string, hasDependents: boolean }

export type FinishInput = {
  taskId: string
  attempt: number
  /** When set, the attempt must still be held by this lease (a pull worker's fencing token). */
  leaseId?: string | null
  outcome: 'completed' | 'failed' | 'cancelled'
  result?: unknown
  error?: TaskError | null
  durationMs: number
}

const LOST_ERROR = `'{"message":"the worker running this attempt stopped","code":"WORKER_LOST"}'`
const GAVE_UP_ERROR = `'{"message":"every attempt allowed to end with its worker lost did so; the task may crash or exhaust its worker","code":"WORKER_LOST"}'`

// A claim takes a queued task, or a running one whose worker vanished (BullMQ handed its job
// over after the lock expired): that attempt is closed as lost and counted. A task that has
// lost its worker TASKLANE_MAX_LOST_ATTEMPTS times ends failed instead of running again,
// since the likeliest cause is the task itself (it exits or exhausts the process).
//
// A claim is idempotent per lease id: the same claim run again after an ambiguous commit (a
// connection cut before the answer, the batcher's one-by-one fallback) finds its own lease on
// the running task and returns that attempt instead of opening the next one. The union's
// second half reads the snapshot before the update, so a row is never in both halves.
const claimSql = (input: string, maxLost: string) => `
  with input as (
    ${input}
  ), claimed as (
    update tasks t set
      status = case when t.status = 'running' and t.lost_attempts + 1 >= ${maxLost} then 'failed' else 'running' end,
      attempts = case when t.status = 'running' and t.lost_attempts + 1 >= ${maxLost} then t.attempts else t.attempts + 1 end,
      error = case when t.status = 'running' and t.lost_attempts + 1 >= ${maxLost} then ${GAVE_UP_ERROR}::jsonb else t.error end,
      finished_at = case when t.status = 'running' and t.lost_attempts + 1 >= ${maxLost} then now() end,
      lost_attempts = t.lost_attempts + (t.status = 'running')::int,
      worker_id = i.worker_id, lease_id = i.lease_id, started_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status in ('queued', 'running') and t.cancel_requested_at is null
      and t.lease_id is distinct from i.lease_id and t.blocked_count = 0
      and not (t.has_dependents and t.status = 'running' and t.lost_attempts + 1 >= ${maxLost})
    returning t.*
  ), lost as (
    update task_attempts a set outcome = 'lost', finished_at = now(),
           duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int, error = ${LOST_ERROR}::jsonb
    from claimed c
    where a.task_id = c.id and a.outcome = 'running' and (a.attempt < c.attempts or c.status = 'failed')
  ), ${owedNotificationsCte('claimed')}, opened as (
    insert into task_attempts (task_id, attempt, worker_id, started_at, outcome)
    select id, attempts, worker_id, started_at, 'running' from claimed where status = 'running'
    on conflict (task_id, attempt) do nothing
  )
  select ${TASK_RETURNING} from claimed
  union all
  select ${taskReturningOf('t')}
  from tasks t join input i on t.id = i.id
  where t.status = 'running' and t.lease_id = i.lease_id`

// A task still waiting for dependencies is not claimed (it has no job, unless one was left
// from before a retry made it wait again). A task others depend on is never ended failed by a
// claim: the reconciler's requeueLost ends it, in a transaction that also settles its
// dependents.
//
// JSON goes in as text and is cast in SQL; absent values stay SQL NULL (a JSON null would
// survive the coalesce on `error`). The batched finish leaves tasks others depend on alone:
// those end in a transaction of their own that also settles their dependents
// (transitions.ts), which the caller falls back to.
const finishSql = (input: string, batched = true) => `
  with input as (
    ${input}
  ), finished as (
    update tasks t set status = i.outcome,
           result = case when i.outcome = 'completed' then i.result::jsonb end,
           error = coalesce(i.error::jsonb, t.error),
           finished_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status = 'running' and t.attempts = i.attempt
      and (i.lease_id is null or t.lease_id = i.lease_id) ${batched ? 'and not t.has_dependents' : ''}
    returning t.id, t.tenant, t.type, t.queue, t.status, t.tags, t.held, t.blocked_count, i.attempt, i.outcome, i.error, i.duration_ms, t.has_dependents
  ), ${owedNotificationsCte('finished')}
  update task_attempts a set outcome = f.outcome, finished_at = now(), duration_ms = f.duration_ms, error = f.error::jsonb
  from finished f
  where a.task_id = f.id and a.attempt = f.attempt
  returning a.task_id as id, f.has_dependents as "hasDependents", ${FINISHED_DISPATCH}`

// What a finished row tells the dispatch window (transitions.ts frees the slot of a task that had one).
const FINISHED_DISPATCH = `f.tenant, f.queue, f.status, f.held, f.blocked_count as "blockedCount"`

const CLAIM_MANY = claimSql('select * from unnest($1::uuid[], $2::text[], $3::uuid[]) as i(id, worker_id, lease_id)', '$4::int')
const CLAIM_ONE = claimSql('select $1::uuid as id, $2::text as worker_id, $3::uuid as lease_id', '$4::int')
const FINISH_MANY = finishSql(`select * from unnest($1::uuid[], $2::int[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::int[])
    as i(id, attempt, lease_id, outcome, result, error, duration_ms)`)
const ONE_FINISH_INPUT = `select $1::uuid as id, $2::int as attempt, $3::uuid as lease_id, $4::text as outcome, $5::text as result,
    $6::text as error, $7::int as duration_ms`
const FINISH_ONE = finishSql(ONE_FINISH_INPUT)
/** The finish of one task whatever its dependents; tells whether it has any. */
const FINISH_ONE_ANY = finishSql(ONE_FINISH_INPUT, false)
const finishParams = (i: FinishInput): unknown[] =>
  [i.taskId, i.attempt, i.leaseId ?? null, i.outcome, i.outcome === 'completed' ? json(i.result) : null, json(i.error), i.durationMs]

const json = (value: unknown): string | null => (value == null ? null : JSON.stringify(value))
const columns = <T> (inputs: T[], value: (input: T) => unknown): unknown => (inputs.length === 1 ? value(inputs[0]!) : inputs.map(value))

/** `left` hears, after the commit, of the tasks each statement moved (transitions.ts frees their dispatch slots). */
export function createTransitionBatchStatements (sql: postgres.Sql, options: { maxLostAttempts: number, left: (rows: readonly DispatchedRow[]) => void }) {
  return {
    /** One outcome (or undefined: nothing to claim) per input, in input order. */
    async claim (inputs: ClaimInput[]): Promise<(ClaimOutcome | undefined)[]> {
      const one = inputs.length === 1
      const rows = await sql.unsafe(one ? CLAIM_ONE : CLAIM_MANY, [
        columns(inputs, (i) => i.taskId),
        columns(inputs, (i) => i.workerId),
        columns(inputs, (i) => i.leaseId),
        options.maxLostAttempts,
      ] as never[], { prepare: one })
      const byId = new Map(rows.map((raw) => { const row = toTaskRow(raw); return [row.id, row] }))
      options.left([...byId.values()])
      return inputs.map((i) => {
        const task = byId.get(i.taskId)
        if (!task) return undefined
        return task.status === 'running' ? { outcome: 'claimed', task } : { outcome: 'worker_lost', task }
      })
    },

    /** The finish of one task others may depend on, in the caller's transaction: undefined when it moved on. */
    async finishOne (tx: Pick<postgres.Sql, 'unsafe'>, input: FinishInput): Promise<FinishedRow | undefined> {
      const [row] = await tx.unsafe<FinishedRow[]>(FINISH_ONE_ANY, finishParams(input) as never[])
      return row
    },

    /** Whether each input's attempt was closed (false: the task moved on without it, or others depend on it). */
    async finish (inputs: FinishInput[]): Promise<boolean[]> {
      const one = inputs.length === 1
      const rows = await sql.unsafe<FinishedRow[]>(one ? FINISH_ONE : FINISH_MANY, [
        columns(inputs, (i) => i.taskId),
        columns(inputs, (i) => i.attempt),
        columns(inputs, (i) => i.leaseId ?? null),
        columns(inputs, (i) => i.outcome),
        columns(inputs, (i) => (i.outcome === 'completed' ? json(i.result) : null)),
        columns(inputs, (i) => json(i.error)),
        columns(inputs, (i) => i.durationMs),
      ] as never[], { prepare: one })
      options.left(rows)
      const done = new Set(rows.map((r) => r.id))
      return inputs.map((i) => done.has(i.taskId))
    },
  }
}
