import { Counter, Gauge, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Config } from '../core/config.ts'
import type { Db } from '../core/db/db-client.ts'
import { firstIdAt } from '../core/ids.ts'
import type { Logger } from '../core/log.ts'
import { createTaskPurgeRepository, FINISHED_STATUSES, type FinishedStatus } from '../core/tasks/task-purge-repository.ts'
import { FIRST_ID } from '../core/tasks/task-recovery-repository.ts'
import { createTenantLimitsRepository } from '../core/tenants/tenant-limits-repository.ts'
import { createPassLoop } from '../core/pass-loop.ts'

// Any constant works, as long as every replica uses it and it differs from the reconciler's.
export const PURGER_LOCK_KEY = 7_325_811_906_114n

// A task's id carries its creation time, which is at or before its finish; the slack covers
// clocks of API hosts running ahead of the database's (the delete itself uses the database's).
const ID_BOUND_SLACK_MS = 10 * 60_000
const DAY_MS = 86_400_000

export type PurgeReport = {
  scanned: number
  purged: Record<FinishedStatus, number>
  /** Every tenant's and status's sweep reached its end within the pass's budget. */
  caughtUp: boolean
}

type PurgerConfig = Pick<Config, 'retentionMs' | 'TASKLANE_PURGE_INTERVAL_MS' | 'TASKLANE_PURGE_BATCH_SIZE' | 'TASKLANE_PURGE_MAX_PER_PASS'>

/**
 * Deletes finished tasks (and, through their foreign keys, their child rows) once their
 * retention has run out: the tenant's `retentionDays` when set, else the deployment's per
 * status. Each tenant and status is swept in id order in short chunks; a pass stops after
 * TASKLANE_PURGE_MAX_PER_PASS rows looked at, and the next one resumes where it stopped.
 */
export function createPurger (deps: {
  sql: postgres.Sql
  db: Db
  /** A client of exactly one connection, the purger's own: it holds the advisory lock. */
  lockSql: postgres.Sql
  config: PurgerConfig
  registry: Registry
  log: Logger
}) {
  const { config, log } = deps
  const repo = createTaskPurgeRepository(deps.sql)
  const limits = createTenantLimitsRepository(deps.db)
  const purgedTotal = new Counter({
    name: 'tasklane_tasks_purged_total',
    help: 'Finished tasks deleted once their retention ran out, by status',
    labelNames: ['status'] as const,
    registers: [deps.registry],
  })
  const caughtUpAt = new Gauge({
    name: 'tasklane_purger_caught_up_timestamp_seconds',
    help: 'When a pass of this replica last ended with nothing past retention left (0: not yet)',
    registers: [deps.registry],
  })
  for (const status of FINISHED_STATUSES) purgedTotal.inc({ status }, 0)
  caughtUpAt.set(0)

  // Where each tenant's and status's sweep resumes; passes start at a different pair each time,
  // so one tenant's backlog does not hold back every other tenant's purge.
  const cursors = new Map<string, string>()
  let rotation = 0

  async function pass (): Promise<PurgeReport> {
    const report: PurgeReport = { scanned: 0, purged: { completed: 0, failed: 0, cancelled: 0 }, caughtUp: true }
    const overrides = await limits.retentionOverrides()
    const groups = await repo.finishedGroups()
    let budget = config.TASKLANE_PURGE_MAX_PER_PASS
    const start = groups.length === 0 ? 0 : rotation++ % groups.length
    for (let n = 0; n < groups.length; n++) {
      const { tenant, status } = groups[(start + n) % groups.length]!
      const days = overrides.get(tenant)
      const retentionMs = days !== undefined ? days * DAY_MS : config.retentionMs[status]
      const beforeId = firstIdAt(Date.now() - retentionMs + ID_BOUND_SLACK_MS)
      const key = `${tenant}\n${status}`
      let after = cursors.get(key) ?? FIRST_ID
      for (;;) {
        if (budget <= 0) { report.caughtUp = false; cursors.set(key, after); break }
        const limit = Math.min(config.TASKLANE_PURGE_BATCH_SIZE, budget)
        const chunk = await repo.purgeChunk(tenant, status, after, beforeId, retentionMs, limit)
        budget -= chunk.scanned
        report.scanned += chunk.scanned
        report.purged[status] += chunk.purged
        if (chunk.purged > 0) purgedTotal.inc({ status }, chunk.purged)
        if (chunk.scanned < limit || !chunk.lastId) { cursors.delete(key); break }
        after = chunk.lastId
      }
    }
    return report
  }

  return createPassLoop({
    name: 'purger',
    what: 'Purger passes',
    intervalMs: config.TASKLANE_PURGE_INTERVAL_MS,
    lock: { sql: deps.lockSql, key: PURGER_LOCK_KEY },
    pass,
    registry: deps.registry,
    log,
    passed (report) {
      if (report.caughtUp) caughtUpAt.set(Date.now() / 1000)
      const purged = FINISHED_STATUSES.reduce((sum, s) => sum + report.purged[s], 0)
      if (purged > 0 || !report.caughtUp) log.info({ purged: report.purged, scanned: report.scanned, caughtUp: report.caughtUp }, 'purger pass')
      else log.debug({ scanned: report.scanned }, 'purger pass found nothing past retention')
    },
  })
}

export type Purger = ReturnType<typeof createPurger>
