import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import type { TaskError } from './task-view.ts'

// The worker's two per-task writes (claim and finish) as multi-row statements, so that the
// attempts a worker runs at the same time share a statement, a round trip and a commit. The
// conditions are the single-row ones, row by row: a row that does not match is left alone
// and its caller hears "no".
//
// Inputs travel as typed arrays expanded with unnest, and the statements are planned on each
// run (not prepared): the planner then knows how many rows come in and how big the tasks
// table is now, and probes the primary key once per row. A plan cached while the table was
// small, or one trusting stale statistics, would scan every unfinished task (the partial
// index on status) for each batch, which under a backlog costs more than the batching saves.

export type ClaimInput = { taskId: string, workerId: string }
export type FinishInput = {
  taskId: string
  attempt: number
  outcome: 'completed' | 'failed' | 'cancelled'
  result?: unknown
  error?: TaskError | null
  durationMs: number
}

const CLAIM = `
  with input as (
    select * from unnest($1::uuid[], $2::text[]) as i(id, worker_id)
  ), claimed as (
    update tasks t set status = 'running', attempts = t.attempts + 1, worker_id = i.worker_id,
           started_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status in ('queued', 'running') and t.cancel_requested_at is null
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
// survive the coalesce on `error`).
const FINISH = `
  with input as (
    select * from unnest($1::uuid[], $2::int[], $3::text[], $4::text[], $5::text[], $6::int[])
      as i(id, attempt, outcome, result, error, duration_ms)
  ), finished as (
    update tasks t set status = i.outcome,
           result = case when i.outcome = 'completed' then i.result::jsonb end,
           error = coalesce(i.error::jsonb, t.error),
           finished_at = now(), updated_at = now()
    from input i
    where t.id = i.id and t.status = 'running' and t.attempts = i.attempt
    returning t.id, i.attempt, i.outcome, i.error, i.duration_ms
  )
  update task_attempts a set outcome = f.outcome, finished_at = now(), duration_ms = f.duration_ms, error = f.error::jsonb
  from finished f
  where a.task_id = f.id and a.attempt = f.attempt
  returning a.task_id as id`

const json = (value: unknown): string | null => (value == null ? null : JSON.stringify(value))

export function createLifecycleBatchStatements (sql: postgres.Sql) {
  return {
    /** One claimed row (or undefined) per input, in input order. */
    async claim (inputs: ClaimInput[]): Promise<(TaskRow | undefined)[]> {
      const rows = await sql.unsafe(CLAIM, [inputs.map((i) => i.taskId), inputs.map((i) => i.workerId)], { prepare: false })
      const byId = new Map(rows.map((raw) => { const row = toTaskRow(raw); return [row.id, row] }))
      return inputs.map((i) => byId.get(i.taskId))
    },

    /** Whether each input's attempt was closed (false: the task moved on without it). */
    async finish (inputs: FinishInput[]): Promise<boolean[]> {
      const rows = await sql.unsafe<{ id: string }[]>(FINISH, [
        inputs.map((i) => i.taskId),
        inputs.map((i) => i.attempt),
        inputs.map((i) => i.outcome),
        inputs.map((i) => (i.outcome === 'completed' ? json(i.result) : null)),
        inputs.map((i) => json(i.error)),
        inputs.map((i) => i.durationMs),
      ], { prepare: false })
      const done = new Set(rows.map((r) => r.id))
      return inputs.map((i) => done.has(i.taskId))
    },
  }
}
