import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import { createPassLoop } from '../pass-loop.ts'
import type { Config } from '../config.ts'
import type { Db } from '../db/db-client.ts'
import type { Logger } from '../log.ts'
import type { FireOutcome, ScheduleFirer } from './schedule-firer.ts'
import { parseCron } from './cron-schedule.ts'
import { nextRunAfter } from './schedule-plan.ts'
import { createScheduleRepository } from './schedule-repository.ts'

const OUTCOMES: readonly FireOutcome[] = ['created', 'skipped_overlap', 'missed']

/** Due schedules looked at per pass; a pass that finds this many due starts the next at once. */
const PER_PASS = 100

export type SchedulePassReport = { due: number, outcomes: Record<FireOutcome, number> }

/**
 * Fires due schedules. Every API and worker replica runs one; Postgres decides which replica
 * makes each task (see the firer), so there is no leader to lose. Between passes the loop
 * sleeps until the nearest due time, at most TASKLANE_SCHEDULER_MAX_SLEEP_MS, so a schedule
 * created or changed through another replica is seen within that time; `wake` cuts the sleep
 * short when this process changed one.
 */
export function createScheduleLoop (deps: {
  db: Db
  fire: ScheduleFirer
  config: Pick<Config, 'TASKLANE_SCHEDULER_MAX_SLEEP_MS'>
  registry: Registry
  log: Logger
}) {
  const { log } = deps
  const maxSleepMs = deps.config.TASKLANE_SCHEDULER_MAX_SLEEP_MS
  const repo = createScheduleRepository(deps.db)
  const runs = new Counter({
    name: 'tasklane_schedule_runs_total',
    help: 'Due times of schedules, by outcome (created; skipped_overlap: the previous task was still queued or running; missed)',
    labelNames: ['outcome'] as const,
    registers: [deps.registry],
  })
  const lag = new Histogram({
    name: 'tasklane_schedule_lag_seconds',
    help: "Time from a schedule's due time to its task being stored",
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    registers: [deps.registry],
  })
  // Read at scrape time from Postgres, so it shows a schedule that nobody fires (every loop
  // stuck or stopped) as well as one fired late; the alert compares it with 1.
  let lastOverdue = 0
  new Gauge({
    name: 'tasklane_schedule_overdue_intervals',
    help: "How far the most overdue schedule is behind its due time, in its own intervals (0 when none is due)",
    registers: [deps.registry],
    async collect () {
      try {
        const { rows, now } = await repo.overdue(PER_PASS)
        lastOverdue = Math.max(0, ...rows.map((s) => {
          const next = nextRunAfter(parseCron(s), s.nextRunAt!, s)
          const interval = next ? next.getTime() - s.nextRunAt!.getTime() : 86_400_000
          return (now.getTime() - s.nextRunAt!.getTime()) / interval
        }))
      } catch (err) {
        log.debug({ err }, 'could not read overdue schedules; the gauge keeps its last value')
      }
      this.set(lastOverdue)
    },
  })
  for (const outcome of OUTCOMES) runs.inc({ outcome }, 0)

  /** One pass: fires what is due; resolves with the report and how long to sleep. */
  async function pass (): Promise<SchedulePassReport & { sleepMs: number }> {
    const report: SchedulePassReport = { due: 0, outcomes: { created: 0, skipped_overlap: 0, missed: 0 } }
    const nearest = await repo.nearest(PER_PASS)
    for (const { id, inMs } of nearest) {
      if (inMs > 0) break
      report.due++
      const fired = await deps.fire(id)
      for (const outcome of fired?.outcomes ?? []) report.outcomes[outcome]++
      for (const task of fired?.tasks ?? []) lag.observe(Math.max(0, task.createdAt.getTime() - task.scheduledFor!.getTime()) / 1000)
    }
    const future = nearest.find((n) => n.inMs > 0)
    // A full page of due schedules: more may be due, go on at once.
    const sleepMs = report.due === PER_PASS ? 0 : Math.min(maxSleepMs, future ? Math.ceil(future.inMs) + 1 : maxSleepMs)
    return { ...report, sleepMs }
  }

  const loop = createPassLoop({
    name: 'schedule',
    what: 'Passes of the schedule loop',
    intervalMs: maxSleepMs,
    nextDelayMs: (report) => report.sleepMs,
    pass,
    passed (report) {
      for (const outcome of OUTCOMES) if (report.outcomes[outcome] > 0) runs.inc({ outcome }, report.outcomes[outcome])
      log.debug({ due: report.due, outcomes: report.outcomes }, 'schedule pass')
    },
    registry: deps.registry,
    log,
  })

  return {
    /** One pass: what it fired and how long the loop would sleep after it. */
    runOnce: async () => (await loop.runOnce())!,
    /** Starts the loop (a max sleep of 0 leaves it off in this process). */
    start: () => loop.start(0),
    /** A schedule changed in this process: look again now instead of at the end of the sleep. */
    wake: loop.wake,
    stop: loop.stop,
  }
}

export type ScheduleLoop = ReturnType<typeof createScheduleLoop>
