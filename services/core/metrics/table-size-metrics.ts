import { Gauge, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Logger } from '../log.ts'

const TABLES = ['tasks', 'task_attempts', 'task_counts', 'tenant_limits']
// Every replica exports the same figures; scrapes closer together than this share one query.
const MIN_QUERY_INTERVAL_MS = 10_000

type TableStats = { table: string, tableBytes: number, indexBytes: number, liveRows: number, deadRows: number }

/**
 * The size of Tasklane's tables and their indexes, and their live and dead row estimates
 * (pg_stat_user_tables), read when Prometheus scrapes: what shows whether retention keeps the
 * database from growing. A failed read leaves the last figures and logs at debug.
 */
export function registerTableSizeMetrics (deps: { registry: Registry, sql: postgres.Sql, log: Logger }): void {
  let last: Promise<TableStats[]> | undefined
  let lastAt = 0
  function read (): Promise<TableStats[]> {
    if (last && Date.now() - lastAt < MIN_QUERY_INTERVAL_MS) return last
    lastAt = Date.now()
    last = deps.sql<TableStats[]>`
      select relname as "table", pg_table_size(relid)::float8 as "tableBytes",
             pg_indexes_size(relid)::float8 as "indexBytes",
             n_live_tup::float8 as "liveRows", n_dead_tup::float8 as "deadRows"
      from pg_stat_user_tables where schemaname = current_schema() and relname = any(${TABLES})`
      .then((rows) => [...rows])
    return last
  }
  async function collect (set: (stats: TableStats) => void): Promise<void> {
    try {
      for (const stats of await read()) set(stats)
    } catch (err) {
      deps.log.debug({ err }, 'could not read table sizes')
    }
  }
  new Gauge({
    name: 'tasklane_db_table_bytes',
    help: 'Size on disk of a Tasklane table (part="table": heap and TOAST) and of its indexes (part="indexes")',
    labelNames: ['table', 'part'] as const,
    registers: [deps.registry],
    async collect () {
      await collect((s) => {
        this.set({ table: s.table, part: 'table' }, s.tableBytes)
        this.set({ table: s.table, part: 'indexes' }, s.indexBytes)
      })
    },
  })
  new Gauge({
    name: 'tasklane_db_table_rows',
    help: 'Rows of a Tasklane table as Postgres estimates them (state="live" or "dead", not yet vacuumed)',
    labelNames: ['table', 'state'] as const,
    registers: [deps.registry],
    async collect () {
      await collect((s) => {
        this.set({ table: s.table, state: 'live' }, s.liveRows)
        this.set({ table: s.table, state: 'dead' }, s.deadRows)
      })
    },
  })
}
