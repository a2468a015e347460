import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import type { TaskError } from './task-view.ts'

// The worker's two per-task writes (claim and finish) as multi-row statements, so that the
// attempts a worker runs at the same time share a statement, a round trip and a commit. The
// conditions are the single-row ones, row by row: a row that does not match is left alone
// and its caller hears "no".

export type ClaimInput = { taskId: string, workerId: string }
export type FinishInput = {
  taskId: string
  attempt: number
  outcome: 'completed' | 'failed' | 'cancelled'
  result?: unknown
  error?: TaskError | null
  durationMs: number
}

export function createLifecycleBatchStatements (sql: postgres.Sql) {
  // Inputs travel as one JSON array (text, cast in SQL): one parameter whatever the batch size,
  // so the statement is prepared once and reused.
  const claimSql = `
    with input as (
      select * from jsonb_to_recordset($1::text::jsonb) as i(id uuid, worker_id text)
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

  const finishSql = `
    with input as (
      select * from jsonb_to_recordset($1::text::jsonb)
        as i(id uuid, attempt int, outcome text, result jsonb, error jsonb, duration_ms int)
    ), finished as (
      update tasks t set status = i.outcome,
             result = case when i.outcome = 'completed' then i.result end,
             error = coalesce(i.error, t.error),
             finished_at = now(), updated_at = now()
      from input i
      where t.id = i.id and t.status = 'running' and t.attempts = i.attempt
      returning t.id, i.attempt, i.outcome, i.error, i.duration_ms
    )
    update task_attempts a set outcome = f.outcome, finished_at = now(), duration_ms = f.duration_ms, error = f.error
    from finished f
    where a.task_id = f.id and a.attempt = f.attempt
    returning a.task_id as id`

  return {
    /** One claimed row (or undefined) per input, in input order. */
    async claim (inputs: ClaimInput[]): Promise<(TaskRow | undefined)[]> {
      const rows = await sql.unsafe(claimSql,
        [JSON.stringify(inputs.map((i) => ({ id: i.taskId, worker_id: i.workerId })))], { prepare: true })
      const byId = new Map(rows.map((raw) => { const row = toTaskRow(raw); return [row.id, row] }))
      return inputs.map((i) => byId.get(i.taskId))
    },

    /** Whether each input's attempt was closed (false: the task moved on without it). */
    async finish (inputs: FinishInput[]): Promise<boolean[]> {
      const payload = inputs.map((i) => ({
        id: i.taskId, attempt: i.attempt, outcome: i.outcome, duration_ms: i.durationMs,
        // Absent values stay SQL NULL: a JSON null would survive the coalesce on `error`.
        result: i.outcome === 'completed' && i.result != null ? i.result : undefined,
        error: i.error ?? undefined,
      }))
      const rows = await sql.unsafe<{ id: string }[]>(finishSql, [JSON.stringify(payload)], { prepare: true })
      const done = new Set(rows.map((r) => r.id))
      return inputs.map((i) => done.has(i.taskId))
    },
  }
}
