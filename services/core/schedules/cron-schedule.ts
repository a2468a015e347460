import { Cron } from 'croner'

// croner computes the run times in the schedule's time zone. It follows Vixie cron on DST
// days (a fixed time that falls in a spring-forward gap runs right after the gap; an interval
// job runs twice through a repeated hour), while the contract asks for what OCPS 1.4
// recommends: a local time that does not exist is skipped, and a local time that occurs twice
// runs once, at its first occurrence. The two rules below filter croner's runs to that, and
// every caller (firing, nextRunAt, upcoming) goes through them, so what is shown is what fires.

/** How far back a repeated local time can lie: more than any zone's DST shift. */
const FOLD_WINDOW_MS = 6 * 3_600_000

/** Safety bound on runs skipped in a row by the DST rules (a handful on a DST day). */
const MAX_SKIPPED = 1_000

export type CronSpec = { cron: string, timezone: string }

export class CronSpecError extends Error {
  readonly field: 'cron' | 'timezone'
  constructor (field: 'cron' | 'timezone', message: string) {
    super(message)
    this.field = field
  }
}

const formatters = new Map<string, Intl.DateTimeFormat>()

function wallClock (at: Date, timezone: string): string {
  let format = formatters.get(timezone)
  if (!format) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit',
    })
    formatters.set(timezone, format)
  }
  return format.format(at)
}

/** True when the zone is an IANA name this runtime knows. */
export function isTimeZone (timezone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: timezone })
    return timezone.length > 0
  } catch {
    return false
  }
}

/** A parsed cron expression in a time zone; throws CronSpecError naming the bad field. */
export function parseCron (spec: CronSpec) {
  const parts = spec.cron.trim().split(/\s+/)
  if (parts.length !== 5 && parts.length !== 6) {
    throw new CronSpecError('cron', 'must have 5 fields (minute hour day month weekday), or 6 with seconds first')
  }
  if (!isTimeZone(spec.timezone)) throw new CronSpecError('timezone', `"${spec.timezone}" is not an IANA time zone`)
  let cron: Cron
  try {
    cron = new Cron(parts.join(' '), { timezone: spec.timezone, mode: '5-or-6-parts', paused: true })
  } catch (err) {
    throw new CronSpecError('cron', (err as Error).message.replace(/^CronPattern: /, ''))
  }

  /** A run the DST rules drop: croner's stand-in for a nonexistent time, or a repeat of a local time. */
  function skipped (at: Date): boolean {
    // Moved past a spring-forward gap: the local time it runs at is not one the pattern names.
    if (!cron.match(at)) return true
    // The second pass through a repeated local time: the same wall clock shows at an earlier
    // instant, one DST shift before. Offsets differ by that shift across the fold.
    const local = wallClock(at, spec.timezone)
    const before = new Date(at.getTime() - FOLD_WINDOW_MS)
    const shift = offsetMs(before, spec.timezone) - offsetMs(at, spec.timezone)
    return shift > 0 && wallClock(new Date(at.getTime() - shift), spec.timezone) === local
  }

  /** The first run strictly after `after`, or null when there is none. */
  function next (after: Date): Date | null {
    let at: Date | null = after
    for (let i = 0; i < MAX_SKIPPED; i++) {
      at = cron.nextRun(at)
      if (!at || !skipped(at)) return at
    }
    return null
  }

  return {
    next,
    /** Up to `n` runs strictly after `after` and not after `until`. */
    nextRuns (n: number, after: Date, until: Date | null = null): Date[] {
      const runs: Date[] = []
      let at: Date | null = after
      while (runs.length < n && (at = next(at)) && (!until || at <= until)) runs.push(at)
      return runs
    },
  }
}

export type ParsedCron = ReturnType<typeof parseCron>

/** The zone's offset from UTC at an instant, in ms (e.g. +3,600,000 for CET). */
function offsetMs (at: Date, timezone: string): number {
  const [m, d, y, h, mi, s] = wallClock(at, timezone).match(/\d+/g)!.map(Number) as [number, number, number, number, number, number]
  const asUtc = Date.UTC(y, m - 1, d, h, mi, s)
  return asUtc - Math.floor(at.getTime() / 1000) * 1000
}
