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
  /** The due times to make a task for now, oldest first. */
  fire: Date[]
  /** Due times passed over without a task. */
  missed: number
  /** The due time after the ones handled now; null when the schedule has no run left. */
  next: Date | null
}

/**
 * What a pass does with a schedule whose `nextRunAt` has come. A due time at most `graceMs`
 * old is on time and gets its task, however many there are (a loop held up for a moment
 * loses nothing). Older ones were missed (every process was down): `catchUp: "latest"` makes
 * one task for the latest of them, "none" none.
 */
export function planDue (s: CronSpec & Window & { nextRunAt: Date, catchUp: ScheduleCatchUp }, now: Date, graceMs: number): DuePlan {
  const cron = parseCron(s)
  const staleUntil = new Date(now.getTime() - graceMs)
  let stale = 0
  let latestStale: Date | null = null
  let at: Date | null = s.nextRunAt
  while (at && at <= staleUntil) {
    stale++
    latestStale = at
    if (stale >= MAX_COUNTED) {
      // Far behind: the rest are not walked one by one; find the latest missed time directly.
      latestStale = latestUpTo(cron, staleUntil, at, s)
      at = nextRunAfter(cron, latestStale, s)
      break
    }
    at = nextRunAfter(cron, at, s)
  }
  const fire: Date[] = s.catchUp === 'latest' && latestStale ? [latestStale] : []
  while (at && at <= now) {
    fire.push(at)
    at = nextRunAfter(cron, at, s)
  }
  return { fire, missed: stale - (s.catchUp === 'latest' && latestStale ? 1 : 0), next: at }
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
