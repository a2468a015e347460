import { Counter, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Config } from '../core/config.ts'
import type { Logger } from '../core/log.ts'
import { createPassLoop } from '../core/pass-loop.ts'

/**
 * Tables whose rows every task inserts, updates or deletes: tasks and what hangs off them
 * (attempts, leases, dependencies, notifications, deliveries; the purge and a client's DELETE
 * remove them through their foreign keys) and task_counts, which the statement triggers update
 * on every change of tasks.
 */
export const CHURNED_TABLES = ['tasks', 'task_attempts', 'task_leases', 'task_dependencies', 'task_counts', 'notification_outbox', 'webhook_deliveries'] as const

export type VacuumReport = {
  /** Tables vacuumed by this pass (with an analyze when they also needed one). */
  vacuumed: string[]
  /** Tables analyzed, by a vacuum or alone. */
  analyzed: string[]
}

type Need = { table: string, vacuum: boolean, analyze: boolean, allowed: boolean }

type VacuumConfig = Pick<Config, 'TASKLANE_PURGE_VACUUM' | 'TASKLANE_VACUUM_CHECK_INTERVAL_MS'>

/**
 * Vacuums and analyzes the churned tables when the server will not: with `autovacuum = off`
 * (or `autovacuum_enabled = false` on a table) their dead tuples are never made room of and the
 * tables and their indexes grow for ever. Each pass reads the tables' statistics and does, per
 * table, what autovacuum would: a VACUUM once its dead tuples (or inserts since the last
 * vacuum) pass autovacuum's threshold, an ANALYZE once its changes since the last analyze pass
 * theirs; the server's autovacuum_* settings and the table's own reloptions set them.
 *
 * The trigger is the churn, not another loop's pass: a client that deletes its tasks, or the
 * updates of every task, leave as many dead tuples as the purge does. A B-tree gives no page
 * back to the file system, so an index grows to the most entries, live and dead, it ever held
 * between two vacuums: the check runs often (TASKLANE_VACUUM_CHECK_INTERVAL_MS) so that a hot
 * queue table is vacuumed after a few seconds of churn, while the threshold, which scales with
 * the table's rows, keeps a large table from being vacuumed more often than autovacuum would.
 *
 * A plain VACUUM blocks neither reads nor writes. SKIP_LOCKED: a table another replica (or a
 * manual VACUUM) is vacuuming is left to it, so replicas need no lock between them.
 * `TASKLANE_PURGE_VACUUM=always` does the same when autovacuum is on, for a server whose
 * autovacuum visits the database too rarely for a queue table (autovacuum_naptime); `off` never.
 */
export function createTableVacuum (deps: {
  sql: postgres.Sql
  config: VacuumConfig
  registry: Registry
  log: Logger
}) {
  const { config, log } = deps
  const runs = new Counter({
    name: 'tasklane_table_maintenance_total',
    help: 'VACUUM and ANALYZE statements a worker issued on the task tables where autovacuum is off (TASKLANE_PURGE_VACUUM), by table and operation; one skipped because another replica was vacuuming the table counts too',
    labelNames: ['table', 'operation'] as const,
    registers: [deps.registry],
  })
  let refusedWarned = false

  /** Each churned table's needs, by autovacuum's rules; only those autovacuum leaves alone unless `always`. */
  async function needs (): Promise<Need[]> {
    const rows = await deps.sql<(Need & { autovacuumed: boolean })[]>`
      with t as (
        select c.relname as table, greatest(c.reltuples, 0) as reltuples, s.n_dead_tup as dead,
          s.n_ins_since_vacuum as inserted, s.n_mod_since_analyze as modified,
          current_setting('autovacuum')::bool and coalesce(o.enabled, true) as autovacuumed,
          coalesce(o.vac_base, current_setting('autovacuum_vacuum_threshold')::float8) as vac_base,
          coalesce(o.vac_scale, current_setting('autovacuum_vacuum_scale_factor')::float8) as vac_scale,
          coalesce(o.ins_base, current_setting('autovacuum_vacuum_insert_threshold')::float8) as ins_base,
          coalesce(o.ins_scale, current_setting('autovacuum_vacuum_insert_scale_factor')::float8) as ins_scale,
          coalesce(o.anl_base, current_setting('autovacuum_analyze_threshold')::float8) as anl_base,
          coalesce(o.anl_scale, current_setting('autovacuum_analyze_scale_factor')::float8) as anl_scale,
          pg_has_role(c.relowner, 'USAGE') as allowed
        from pg_class c
        join pg_stat_user_tables s on s.relid = c.oid
        cross join lateral (
          select max(option_value) filter (where option_name = 'autovacuum_enabled')::bool as enabled,
            max(option_value) filter (where option_name = 'autovacuum_vacuum_threshold')::float8 as vac_base,
            max(option_value) filter (where option_name = 'autovacuum_vacuum_scale_factor')::float8 as vac_scale,
            max(option_value) filter (where option_name = 'autovacuum_vacuum_insert_threshold')::float8 as ins_base,
            max(option_value) filter (where option_name = 'autovacuum_vacuum_insert_scale_factor')::float8 as ins_scale,
            max(option_value) filter (where option_name = 'autovacuum_analyze_threshold')::float8 as anl_base,
            max(option_value) filter (where option_name = 'autovacuum_analyze_scale_factor')::float8 as anl_scale
          from pg_options_to_table(c.reloptions)
        ) o
        where c.oid = any(${CHURNED_TABLES as unknown as string[]}::text[]::regclass[])
      )
      select "table", autovacuumed, allowed,
        dead > vac_base + vac_scale * reltuples or (ins_base >= 0 and inserted > ins_base + ins_scale * reltuples) as vacuum,
        modified > anl_base + anl_scale * reltuples as analyze
      from t order by "table"`
    return rows.filter((r) => config.TASKLANE_PURGE_VACUUM === 'always' || !r.autovacuumed)
  }

  async function pass (): Promise<VacuumReport> {
    const report: VacuumReport = { vacuumed: [], analyzed: [] }
    if (config.TASKLANE_PURGE_VACUUM === 'off') return report
    const due = (await needs()).filter((n) => n.vacuum || n.analyze)
    const refused = due.filter((n) => !n.allowed)
    if (refused.length > 0 && !refusedWarned) {
      refusedWarned = true
      log.warn({ tables: refused.map((n) => n.table) }, 'autovacuum is off and this role does not own these task tables, so it cannot vacuum them; they will grow until someone does')
    }
    for (const { table, vacuum, analyze } of due.filter((n) => n.allowed)) {
      // The names come from CHURNED_TABLES, not from input.
      if (vacuum) await deps.sql.unsafe(`vacuum (skip_locked${analyze ? ', analyze' : ''}) ${table}`)
      else await deps.sql.unsafe(`analyze (skip_locked) ${table}`)
      if (vacuum) { report.vacuumed.push(table); runs.inc({ table, operation: 'vacuum' }) }
      if (analyze) { report.analyzed.push(table); runs.inc({ table, operation: 'analyze' }) }
    }
    return report
  }

  return createPassLoop({
    name: 'vacuum',
    what: 'Passes of the workers\' vacuum of the task tables',
    intervalMs: config.TASKLANE_PURGE_VACUUM === 'off' ? 0 : config.TASKLANE_VACUUM_CHECK_INTERVAL_MS,
    pass,
    registry: deps.registry,
    log,
    passed (report) {
      if (report.vacuumed.length > 0 || report.analyzed.length > 0) log.debug(report, 'vacuum pass')
    },
  })
}

export type TableVacuum = ReturnType<typeof createTableVacuum>
