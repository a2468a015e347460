import type postgres from 'postgres'
import type { Percentiles } from './http-load.ts'

export type Window = { from: Date, to: Date }

const LATENCY = `
  select count(*)::int as n,
         percentile_disc(array[0.5, 0.95, 0.99]) within group (order by extract(epoch from started_at - run_at) * 1000) as pickup,
         percentile_disc(array[0.5, 0.95, 0.99]) within group (order by extract(epoch from finished_at - created_at) * 1000) as e2e
  from tasks
  where created_at >= $1::timestamptz and created_at < $2::timestamptz and status = 'completed'`

const round = (ms: unknown): number => Math.round(Number(ms ?? 0) * 10) / 10
const toPercentiles = (values: unknown[] | null): Percentiles =>
  ({ p50: round(values?.[0]), p95: round(values?.[1]), p99: round(values?.[2]) })

/** What Postgres recorded about the tasks of one window: the truth the throughput is judged by. */
export function createTaskReadout (sql: postgres.Sql) {
  return {
    async counts (w: Window): Promise<{ created: number, completed: number }> {
      const [row] = await sql<{ created: number, completed: number }[]>`
        select
          (select count(*)::int from tasks where created_at >= ${w.from.toISOString()}::timestamptz and created_at < ${w.to.toISOString()}::timestamptz) as created,
          (select count(*)::int from tasks where status = 'completed' and finished_at >= ${w.from.toISOString()}::timestamptz and finished_at < ${w.to.toISOString()}::timestamptz) as completed`
      return row!
    },

    /** Tasks created in the window and not yet terminal. */
    async unfinished (w: Window): Promise<number> {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from tasks
        where created_at >= ${w.from.toISOString()}::timestamptz and created_at < ${w.to.toISOString()}::timestamptz and status in ('queued', 'running')`
      return row!.n
    },

    /** Pickup (runAt to startedAt) and end-to-end (createdAt to finishedAt) latency of the window's completed tasks. */
    async latencies (w: Window): Promise<{ completed: number, pickupMs: Percentiles, endToEndMs: Percentiles }> {
      const [row] = await sql.unsafe<{ n: number, pickup: unknown[] | null, e2e: unknown[] | null }[]>(LATENCY, [w.from.toISOString(), w.to.toISOString()])
      return { completed: row!.n, pickupMs: toPercentiles(row!.pickup), endToEndMs: toPercentiles(row!.e2e) }
    },

    /** Pids of the Postgres processes serving this database's services, plus the shared writers. */
    async postgresPids (dbName: string): Promise<number[]> {
      const rows = await sql<{ pid: number }[]>`
        select pid from pg_stat_activity
        where (datname = ${dbName} and application_name <> 'tasklane-bench')
           or backend_type in ('walwriter', 'background writer', 'checkpointer')`
      return rows.map((r) => r.pid)
    },
  }
}
