import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import type { TaskError } from './task-view.ts'

// The worker's two per-task writes (claim and finish) as multi-row statements, so that the
// attempts a worker runs at the same time share a statement, a round trip and a commit. The
// conditions are the single-row ones, row by row: a row that does not match is left alone
// and its caller hears "no".
//
// Several inputs travel as typed arrays expanded with unnest, and that statement is planned
// on each run (not prepared): the planner then knows how many rows come in and how big the
// tasks table is now, and probes the primary key once per row. A plan cached while the table
// was small, or one trusting stale statistics, would scan every unfinished task (the partial
// index on status) for each batch, which under a backlog costs more than batching saves.
// A single input (light load) uses the same statement over a one-row input, prepared: a
// one-row outer side always plans as a primary-key probe, and planning would cost more
// than the statement itself.

export type ClaimInput = { taskId: string, workerId: string }
export type FinishInput = {
  taskId: string
  attempt: number
  outcome: 'completed' | 'failed' | 'cancelled'
  result?: unknown
  error?: TaskError | null
  durationMs: number
}

const claimSql = (input: string) => `
  with input as (
    ${input}
  ), claimed as (
    update tasks t set status = 'running', attempts = t.attempts + 1, worker_id = i.worker_id,
           started_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status in ('queued', 'running') and t.cancel_requested_at is null and t.blocked_count = 0
    returning t.*
  ), lost as (
    update task_attempts a set outcome = 'lost', finished_at = now(),
           duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int,
           error = '{"message":"the worker running this attempt stopped","code":"WORKER_LOST"}'
    from claimed c
    where a.task_id = c.id and a.outcome = 'running' and a.attempt < c.attempts
  ), opened as (
    insert into task_attempts (task_id, attempt, worker_id, started_at, outcome)
    select id, attempts, worker_id, started_at, 'running' from claimed
    on conflict (task_id, attempt) do nothing
  )
  select ${TASK_RETURNING} from claimed`

// JSON goes in as text and is cast in SQL; absent values stay SQL NULL (a JSON null would
// survive the coalesce on `error`). The batched form leaves tasks that others depend on
// alone: those end in a transaction of their own that also settles their dependents
// (dependency-transitions.ts), which the caller falls back to.
const finishSql = (input: string, batched = true) => `
  with input as (
    ${input}
  ), finished as (
    update tasks t set status = i.outcome,
           result = case when i.outcome = 'completed' then i.result::jsonb end,
           error = coalesce(i.error::jsonb, t.error),
           finished_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status = 'running' and t.attempts = i.attempt ${batched ? 'and not t.has_dependents' : ''}
    returning t.id, i.attempt, i.outcome, i.error, i.duration_ms, t.has_dependents
  )
  update task_attempts a set outcome = f.outcome, finished_at = now(), duration_ms = f.duration_ms, error = f.error::jsonb
  from finished f
  where a.task_id = f.id and a.attempt = f.attempt
  returning a.task_id as id, f.has_dependents as "hasDependents"`

const CLAIM_MANY = claimSql('select * from unnest($1::uuid[], $2::text[]) as i(id, worker_id)')
const CLAIM_ONE = claimSql('select $1::uuid as id, $2::text as worker_id')
const FINISH_MANY = finishSql(`select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::int[])
    as i(id, attempt, outcome, result, error, duration_ms)`)
const ONE_FINISH_INPUT = `select $1::uuid as id, $2::int as attempt, $3::text as outcome, $4::text as result,
    $5::text as error, $6::int as duration_ms`
const FINISH_ONE = finishSql(ONE_FINISH_INPUT)
/** The finish of one task whatever its dependents; tells whether it has any. */
export const FINISH_ONE_ANY = finishSql(ONE_FINISH_INPUT, false)
export const finishParams = (i: FinishInput): unknown[] =>
  [i.taskId, i.attempt, i.outcome, i.outcome === 'completed' ? json(i.result) : null, json(i.error), i.durationMs]

const json = (value: unknown): string | null => (value == null ? null : JSON.stringify(value))
const columns = <T> (inputs: T[], value: (input: T) => unknown): unknown => (inputs.length === 1 ? value(inputs[0]!) : inputs.map(value))

export function createLifecycleBatchStatements (sql: postgres.Sql) {
  return {
    /** One claimed row (or undefined) per input, in input order. */
    async claim (inputs: ClaimInput[]): Promise<(TaskRow | undefined)[]> {
      const one = inputs.length === 1
      const rows = await sql.unsafe(one ? CLAIM_ONE : CLAIM_MANY,
        [columns(inputs, (i) => i.taskId), columns(inputs, (i) => i.workerId)] as never[], { prepare: one })
      const byId = new Map(rows.map((raw) => { const row = toTaskRow(raw); return [row.id, row] }))
      return inputs.map((i) => byId.get(i.taskId))
    },

    /** Whether each input's attempt was closed (false: the task moved on without it, or others depend on it). */
    async finish (inputs: FinishInput[]): Promise<boolean[]> {
      const one = inputs.length === 1
      const rows = await sql.unsafe<{ id: string }[]>(one ? FINISH_ONE : FINISH_MANY, [
        columns(inputs, (i) => i.taskId),
        columns(inputs, (i) => i.attempt),
        columns(inputs, (i) => i.outcome),
        columns(inputs, (i) => (i.outcome === 'completed' ? json(i.result) : null)),
        columns(inputs, (i) => json(i.error)),
        columns(inputs, (i) => i.durationMs),
      ] as never[], { prepare: one })
      const done = new Set(rows.map((r) => r.id))
      return inputs.map((i) => done.has(i.taskId))
    },
  }
}
