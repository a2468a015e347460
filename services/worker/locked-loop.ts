import type postgres from 'postgres'
import type { Logger } from '../core/log.ts'

export type PassResult = 'done' | 'skipped' | 'error'

/**
 * A background pass that every replica schedules and one at a time runs: each pass takes a
 * Postgres session advisory lock on a client of one connection (its own), does the work
 * through the pool, and gives the lock back. Advisory locks are per database, so one pass
 * runs per Tasklane database; a backend killed mid-pass takes its lock with it.
 *
 * The lock is a session lock, not a transaction held open around the work: postgres.js
 * (3.4.9) writes a transaction's commit or rollback on its pinned connection even after that
 * connection's backend was terminated, and a write to the closed socket throws from a
 * setImmediate (porsager/postgres#1208), an uncaught exception that stopped the worker.
 */
export function createLockedLoop<R> (deps: {
  name: string
  intervalMs: number
  lockSql: postgres.Sql
  lockKey: bigint
  pass: () => Promise<R>
  /** Told after every pass: the report when this replica did the work. */
  passed: (result: PassResult, report: R | undefined) => void
  log: Logger
}) {
  const lockKey = deps.lockKey.toString()

  /** One pass if no other replica is in one: the report, or undefined when the lock was taken. */
  async function runOnce (): Promise<R | undefined> {
    let report: R | undefined
    try {
      const [row] = await deps.lockSql<{ locked: boolean }[]>`select pg_try_advisory_lock(${lockKey}::bigint) as locked`
      if (row?.locked) {
        try {
          // The work uses the pool, so the lock's connection stays free for the unlock.
          report = await deps.pass()
        } finally {
          await deps.lockSql`select pg_advisory_unlock(${lockKey}::bigint)`
        }
      }
    } catch (err) {
      deps.passed('error', undefined)
      throw err
    }
    deps.passed(report === undefined ? 'skipped' : 'done', report)
    return report
  }

  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let stopped = true

  function schedule (): void {
    if (stopped) return
    timer = setTimeout(() => {
      running = runOnce()
        .catch((err) => deps.log.warn({ err }, `${deps.name} pass failed; trying again at the next interval`))
        .finally(schedule)
    }, deps.intervalMs)
  }

  return {
    runOnce,
    /** Starts passes every interval (an interval of 0 leaves the loop off). */
    start (): void {
      if (deps.intervalMs === 0 || !stopped) return
      stopped = false
      schedule()
    },
    /** No new pass starts; resolves once the current one is over. */
    async stop (): Promise<void> {
      stopped = true
      clearTimeout(timer)
      await running
    },
  }
}
