import { Counter, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Logger } from './log.ts'

export type PassResult = 'done' | 'skipped' | 'error'

/**
 * A background pass repeated by every replica: the reconciler, the purger, the schedule loop,
 * the notification outbox sender. Each counts its passes in `tasklane_<name>_passes_total{result}`
 * and logs a failed pass the same way; the next pass starts after `delayMs` (fixed, or computed
 * from the last report), or at once when `wake` is called.
 *
 * With a `lock`, one replica at a time runs a pass: it takes a Postgres session advisory lock on
 * a client of one connection (its own), does the work through the pool, and gives the lock back.
 * Advisory locks are per database, so one pass runs per Tasklane database; a backend killed
 * mid-pass takes its lock with it. A replica that finds the lock taken counts `skipped`.
 *
 * The lock is a session lock, not a transaction held open around the work: postgres.js
 * (3.4.9) writes a transaction's commit or rollback on its pinned connection even after that
 * connection's backend was terminated, and a write to the closed socket throws from a
 * setImmediate (porsager/postgres#1208), an uncaught exception that stopped the worker.
 */
export function createPassLoop<R> (deps: {
  /** The metric's and the log's name: `tasklane_<name>_passes_total`. */
  name: string
  /** What passes, for the metric's help text ("Reconciler passes"). */
  what: string
  /** Milliseconds between passes; 0 leaves the loop off in this process. */
  intervalMs: number
  /** The wait after a pass, when it depends on what the pass found (default: intervalMs). */
  nextDelayMs?: (report: R) => number
  lock?: { sql: postgres.Sql, key: bigint }
  pass: () => Promise<R>
  /** Told after every pass this replica did (not after a skipped or failed one). */
  passed?: (report: R) => void
  registry: Registry
  log: Logger
}) {
  const { log } = deps
  const results: PassResult[] = deps.lock ? ['done', 'skipped', 'error'] : ['done', 'error']
  const passes = new Counter({
    name: `tasklane_${deps.name}_passes_total`,
    help: `${deps.what}, by result (done; ${deps.lock ? 'skipped: another replica held the lock; ' : ''}error)`,
    labelNames: ['result'] as const,
    registers: [deps.registry],
  })
  for (const result of results) passes.inc({ result }, 0)

  async function locked (): Promise<R | undefined> {
    const { sql, key } = deps.lock!
    const [row] = await sql<{ locked: boolean }[]>`select pg_try_advisory_lock(${key.toString()}::bigint) as locked`
    if (!row?.locked) return undefined
    try {
      // The work uses the pool, so the lock's connection stays free for the unlock.
      return await deps.pass()
    } finally {
      await sql`select pg_advisory_unlock(${key.toString()}::bigint)`
    }
  }

  /** One pass: its report, or undefined when another replica held the lock. Throws when it failed. */
  async function runOnce (): Promise<R | undefined> {
    let report: R | undefined
    try {
      report = deps.lock ? await locked() : await deps.pass()
    } catch (err) {
      passes.inc({ result: 'error' })
      throw err
    }
    if (report === undefined) {
      passes.inc({ result: 'skipped' })
      return undefined
    }
    passes.inc({ result: 'done' })
    deps.passed?.(report)
    return report
  }

  let timer: NodeJS.Timeout | undefined
  let running: Promise<unknown> = Promise.resolve()
  let busy = false
  let wakeAfterPass = false
  let stopped = true

  function schedule (ms: number): void {
    if (stopped) return
    clearTimeout(timer)
    timer = setTimeout(() => {
      busy = true
      running = runOnce()
        .then((report) => report !== undefined && deps.nextDelayMs ? deps.nextDelayMs(report) : deps.intervalMs)
        .catch((err) => {
          log.warn({ err }, `${deps.name} pass failed; trying again at the next interval`)
          return deps.intervalMs
        })
        .then((ms) => {
          busy = false
          schedule(wakeAfterPass ? 0 : ms)
          wakeAfterPass = false
        })
    }, ms)
  }

  return {
    runOnce,
    /** Starts passes, the first after `firstDelayMs` (default: one interval). */
    start (firstDelayMs = deps.intervalMs): void {
      if (deps.intervalMs === 0 || !stopped) return
      stopped = false
      schedule(firstDelayMs)
    },
    /** Something changed in this process: pass now instead of at the end of the wait. */
    wake (): void {
      if (stopped) return
      // A pass in progress may have read its input before the change: pass once more after it.
      if (busy) wakeAfterPass = true
      else schedule(0)
    },
    /** No new pass starts; resolves once the current one is over. */
    async stop (): Promise<void> {
      stopped = true
      clearTimeout(timer)
      await running
    },
  }
}

export type PassLoop<R> = ReturnType<typeof createPassLoop<R>>
