import t from 'tap'
import { CronSpecError, parseCron } from '../services/core/schedules/cron-schedule.ts'

// 2027: Europe/Berlin springs forward on 28 March (02:00 CET -> 03:00 CEST) and falls back on
// 31 October (03:00 CEST -> 02:00 CET); America/New_York on 14 March (02:00 EST -> 03:00 EDT)
// and 7 November (02:00 EDT -> 01:00 EST).
const runs = (cron: string, timezone: string, after: string, n: number) =>
  parseCron({ cron, timezone }).nextRuns(n, new Date(after)).map((d) => d.toISOString())

t.test('Europe/Berlin spring-forward: a daily 02:30 does not exist on 28 March and is skipped', async (t) => {
  t.same(runs('30 2 * * *', 'Europe/Berlin', '2027-03-26T12:00:00Z', 3), [
    '2027-03-27T01:30:00.000Z', // 02:30 CET
    '2027-03-29T00:30:00.000Z', // 02:30 CEST, the day after; nothing on the 28th
    '2027-03-30T00:30:00.000Z',
  ])
})

t.test('Europe/Berlin spring-forward: an interval job skips the missing hour', async (t) => {
  t.same(runs('0 * * * *', 'Europe/Berlin', '2027-03-27T23:30:00Z', 4), [
    '2027-03-28T00:00:00.000Z', // 01:00 CET
    '2027-03-28T01:00:00.000Z', // 03:00 CEST (02:00 does not exist)
    '2027-03-28T02:00:00.000Z',
    '2027-03-28T03:00:00.000Z',
  ])
})

t.test('Europe/Berlin fall-back: a daily 02:30 runs once, at its first occurrence', async (t) => {
  t.same(runs('30 2 * * *', 'Europe/Berlin', '2027-10-29T12:00:00Z', 3), [
    '2027-10-30T00:30:00.000Z',
    '2027-10-31T00:30:00.000Z', // 02:30 CEST; not again at 02:30 CET (01:30Z)
    '2027-11-01T01:30:00.000Z',
  ])
})

t.test('Europe/Berlin fall-back: an hourly job runs once per local hour through the repeated hour', async (t) => {
  t.same(runs('0 * * * *', 'Europe/Berlin', '2027-10-30T23:30:00Z', 4), [
    '2027-10-31T00:00:00.000Z', // 02:00 CEST
    '2027-10-31T02:00:00.000Z', // 03:00 CET; the repeated 02:00 CET (01:00Z) is not run again
    '2027-10-31T03:00:00.000Z',
    '2027-10-31T04:00:00.000Z',
  ])
})

t.test('America/New_York spring-forward: a daily 02:30 is skipped on 14 March', async (t) => {
  t.same(runs('30 2 * * *', 'America/New_York', '2027-03-12T12:00:00Z', 2), [
    '2027-03-13T07:30:00.000Z', // 02:30 EST on the 13th
    '2027-03-15T06:30:00.000Z', // 02:30 EDT on the 15th; the 14th has no 02:30
  ])
})

t.test('America/New_York fall-back: every 30 minutes in the 01:00 hour runs each local time once', async (t) => {
  t.same(runs('*/30 1 * * *', 'America/New_York', '2027-11-07T04:00:00Z', 4), [
    '2027-11-07T05:00:00.000Z', // 01:00 EDT
    '2027-11-07T05:30:00.000Z', // 01:30 EDT; 01:00 and 01:30 EST (06:00Z, 06:30Z) are repeats
    '2027-11-08T06:00:00.000Z', // 01:00 EST the next day
    '2027-11-08T06:30:00.000Z',
  ])
})

t.test('the monthly report: the 1st at 02:00 Europe/Berlin, in winter and summer time', async (t) => {
  t.same(runs('0 2 1 * *', 'Europe/Berlin', '2027-01-15T00:00:00Z', 3), [
    '2027-02-01T01:00:00.000Z', '2027-03-01T01:00:00.000Z', '2027-04-01T00:00:00.000Z',
  ])
})

t.test('seconds field, limits and bad input', async (t) => {
  t.same(runs('*/2 * * * * *', 'UTC', '2027-01-01T00:00:00.500Z', 3),
    ['2027-01-01T00:00:02.000Z', '2027-01-01T00:00:04.000Z', '2027-01-01T00:00:06.000Z'])
  t.same(parseCron({ cron: '0 2 * * *', timezone: 'UTC' }).nextRuns(5, new Date('2027-01-01T00:00:00Z'), new Date('2027-01-03T02:00:00Z'))
    .map((d) => d.toISOString()), ['2027-01-01T02:00:00.000Z', '2027-01-02T02:00:00.000Z', '2027-01-03T02:00:00.000Z'])
  for (const [cron, timezone, field] of [['* * * *', 'UTC', 'cron'], ['61 * * * *', 'UTC', 'cron'], ['@daily', 'UTC', 'cron'],
    ['* * * * * * *', 'UTC', 'cron'], ['* * * * *', 'Mars/Olympus', 'timezone'], ['* * * * *', '', 'timezone']] as const) {
    const err = t.throws(() => parseCron({ cron, timezone }), `${cron} "${timezone}" is refused`)
    t.ok(err instanceof CronSpecError && err.field === field, `names ${field}`)
  }
})
