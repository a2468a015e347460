import type { ScheduleCatchUp } from '../db/schema.ts'
import { parseCron, type CronSpec, type ParsedCron } from './cron-schedule.ts'

export type Window = { startAt: Date | null, endAt: Date | null }

/** Beyond this many missed due times, the rest are not counted one by one. */
const MAX_COUNTED = 10_000

/** The first run at or after `from` (and at or after startAt), not after endAt; null when none is left. */
export function firstRunFrom (cron: ParsedCron, from: Date, window: Window): Date | null {
  const start = window.startAt && window.startAt > from ? window.startAt : from
  // Runs fall on whole seconds and `next` is strictly after: step back just under one.
  const run = cron.next(new Date(start.getTime() - 1))
  return run && (!window.endAt || run <= window.endAt) ? run : null
}

/** The first run strictly after `after`, within the window. */
export const nextRunAfter = (cron: ParsedCron, after: Date, window: Window): Date | null =>
  firstRunFrom(cron, new Date(Math.floor(after.getTime() / 1000) * 1000 + 1000), window)

/** The next `n` runs from `from` on, within the window (what `upcoming` shows). */
export function upcomingRuns (spec: CronSpec, from: Date, window: Window, n = 5): Date[] {
  const cron = parseCron(spec)
  const first = firstRunFrom(cron, from, window)
  if (!first) return []
  return [first, ...cron.nextRuns(n - 1, first, window.endAt)]
}

export type DuePlan = {
  /** The due time to make a task for now, if any. */
  fire: Date | null
  /** Due times passed over without a task. */
  missed: number
  /** The due time after the ones handled now; null when the schedule has no run left. */
  next: Date | null
}

/**
 * What a pass does with a schedule whose `nextRunAt` has come. A due time is on time when it
 * is the only one that has passed and it is at most `graceMs` old; it gets its task. Otherwise
 * the schedule fell behind (every process was down, or the loop was held up for more than an
 * interval): the older due times are missed, and the latest one gets a task with
 * `catchUp: "latest"`, or with "none" only if it is itself within the grace.
 */
export function planDue (s: CronSpec & Window & { nextRunAt: Date, catchUp: ScheduleCatchUp }, now: Date, graceMs: number): DuePlan {
  const cron = parseCron(s)
  let latest = s.nextRunAt
  let passed = 1
  let next = nextRunAfter(cron, latest, s)
  while (next && next <= now) {
    passed++
    latest = next
    if (passed >= MAX_COUNTED) {
      // Far behind: the rest are not walked one by one; find the latest due time directly.
      latest = latestUpTo(cron, now, latest, s)
      next = nextRunAfter(cron, latest, s)
      break
    }
    next = nextRunAfter(cron, latest, s)
  }
  const fresh = now.getTime() - latest.getTime() <= graceMs
  if (passed === 1 && fresh) return { fire: latest, missed: 0, next }
  if (s.catchUp === 'latest' || fresh) return { fire: latest, missed: passed - 1, next }
  return { fire: null, missed: passed, next }
}

/** The latest run in (floor, now], searched in growing windows back from now; floor if none. */
function latestUpTo (cron: ParsedCron, now: Date, floor: Date, window: Window): Date {
  for (const back of [60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 400 * 86_400_000]) {
    let at: Date | null = new Date(Math.max(floor.getTime(), now.getTime() - back))
    let latest: Date | null = null
    while ((at = nextRunAfter(cron, at, window)) && at <= now) latest = at
    if (latest) return latest
  }
  return floor
}
