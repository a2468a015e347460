import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { deletePrefixKeys } from './helpers/fault-tools.ts'
import { startPrivateRedis } from './helpers/fault-services.ts'
import { parseMetrics, scrape, sum } from './helpers/prom-text.ts'
import { postSchedule, scheduledTasks, startFleet } from './helpers/schedule-fleet.ts'
import { createTestDatabase, uniqueName } from './helpers/services.ts'
import postgres from 'postgres'

type Test = { teardown: (fn: () => unknown) => void }

const secondsOf = (d: Date) => d.getTime() / 1000

async function setup (t: Test, extra: Record<string, string> = {}) {
  const redis = await startPrivateRedis(t)
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const sql = postgres(database.url, { max: 2, onnotice: () => {} })
  t.teardown(() => sql.end({ timeout: 5 }))
  const prefix = uniqueName('tlsched')
  const env = {
    DATABASE_URL: database.url, REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0',
    TASKLANE_AUTH: 'disabled', TASKLANE_QUEUE_PREFIX: prefix,
    // The shared test machine stalls event loops at times: no load shedding in these runs.
    TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '0',
    // Quick repairs, so tasks Redis lost are enqueued again within the test.
    TASKLANE_RECONCILER_INTERVAL_MS: '1000', TASKLANE_RECONCILER_MIN_AGE_MS: '1000',
    ...extra,
  }
  return { redis, sql, prefix, env }
}

t.test('two APIs and two workers for 30 s, Redis keys deleted and Redis restarted empty: one task per due time, all run; overlap "skip" holds back', async (t) => {
  const { redis, sql, prefix, env } = await setup(t)
  const fleet = await startFleet(t, env, { apis: 2, workers: 2 })
  const every2s = await postSchedule(fleet.apiUrl, { name: 'every-2s', cron: '*/2 * * * * *', overlap: 'allow', task: { type: 'echo', payload: { n: 1 } } })
  const slow = await postSchedule(fleet.apiUrl, { name: 'slow', cron: '*/2 * * * * *', overlap: 'skip', task: { type: 'sleep', payload: { ms: 5000 }, timeoutMs: 60_000 } })
  const started = Date.now()

  await sleep(10_000)
  const deleted = await deletePrefixKeys(redis.url, prefix)
  t.comment(`deleted ${deleted} keys of the prefix at ${((Date.now() - started) / 1000).toFixed(1)} s`)
  await sleep(8_000)
  await redis.stop()
  await sleep(1_000)
  await redis.start()
  t.comment(`redis restarted empty at ${((Date.now() - started) / 1000).toFixed(1)} s`)
  await sleep(Math.max(0, 31_000 - (Date.now() - started)))

  // Every task made is run, whatever Redis lost: wait for them to finish.
  const deadline = Date.now() + 40_000
  let tasks = await scheduledTasks(sql, every2s)
  while (tasks.some((x) => x.status !== 'completed') && Date.now() < deadline) {
    await sleep(250)
    tasks = await scheduledTasks(sql, every2s)
  }
  const dues = tasks.map((x) => secondsOf(x.scheduledFor))
  t.comment(`every-2s: ${tasks.length} tasks, due ${dues[0]}..${dues.at(-1)}`)
  t.ok(tasks.length >= 14, 'about one task every 2 s for 30 s')
  t.equal(new Set(dues).size, dues.length, 'no due time has two tasks')
  const gaps = dues.slice(1).map((d, i) => d - dues[i]!)
  t.same([...new Set(gaps)], [2], 'every due time from the first to the last has its task: no gap')
  t.equal(tasks.filter((x) => x.status === 'completed').length, tasks.length, 'every task ran to completion')
  const lags = tasks.map((x) => x.createdAt.getTime() - x.scheduledFor.getTime()).sort((a, b) => a - b)
  t.comment(`lag ms p50=${lags[Math.floor(lags.length / 2)]} max=${lags.at(-1)}`)

  // overlap "skip": a 5 s task on a 2 s schedule; no task is made while the previous one is unfinished.
  const slowTasks = (await scheduledTasks(sql, slow)).filter((x) => x.createdAt.getTime() < Date.now() - 500)
  t.ok(slowTasks.length >= 3, `slow: ${slowTasks.length} tasks`)
  for (let i = 1; i < slowTasks.length; i++) {
    const previous = slowTasks[i - 1]!
    t.ok(previous.finishedAt && slowTasks[i]!.createdAt >= previous.finishedAt,
      `slow task ${i} made after task ${i - 1} finished`)
  }
  let skipped = 0
  let created = 0
  for (const p of fleet.processes) {
    const samples = parseMetrics(await scrape(`http://127.0.0.1:${p.metricsPort}/metrics`))
    skipped += sum(samples, 'tasklane_schedule_runs_total', { outcome: 'skipped_overlap' })
    created += sum(samples, 'tasklane_schedule_runs_total', { outcome: 'created' })
  }
  t.ok(skipped >= 4, `due times skipped for overlap, counted: ${skipped}`)
  t.equal(created, tasks.length + (await scheduledTasks(sql, slow)).length, 'created counted once per task, across the processes')
  await fleet.stop()
})

t.test('every process stopped for three intervals: "latest" makes one catch-up task, "none" none', async (t) => {
  const GRACE_MS = 1000
  const { sql, env } = await setup(t, { TASKLANE_SCHEDULE_MISFIRE_GRACE_MS: String(GRACE_MS) })
  const INTERVAL = 5
  let fleet = await startFleet(t, env, { apis: 1, workers: 1 })
  const template = { cron: `*/${INTERVAL} * * * * *`, overlap: 'allow', task: { type: 'echo' } }
  const latest = await postSchedule(fleet.apiUrl, { ...template, name: 'latest', catchUp: 'latest' })
  const none = await postSchedule(fleet.apiUrl, { ...template, name: 'none', catchUp: 'none' })
  /** Waits until the wall clock is `offset` seconds past a due time. */
  const until = async (offset: number) => {
    const ms = INTERVAL * 1000
    await sleep((offset * 1000 - (Date.now() % ms) + ms) % ms)
  }
  await sleep(INTERVAL * 1000)
  await until(INTERVAL / 2)
  await fleet.stop()
  const stoppedAt = new Date()
  await sleep(3 * INTERVAL * 1000)
  // Back in the middle of an interval, so the latest missed due time is well past the grace.
  await until(INTERVAL / 2)
  const restartAt = Date.now()
  fleet = await startFleet(t, env, { apis: 1, workers: 1 })
  t.comment(`stopped ${stoppedAt.toISOString()}, processes up again ${Date.now() - restartAt} ms after the restart began`)
  await sleep(2 * INTERVAL * 1000 + 1000)
  await fleet.stop()

  for (const [name, id] of [['latest', latest], ['none', none]] as const) {
    const tasks = await scheduledTasks(sql, id)
    const before = tasks.filter((x) => x.scheduledFor < stoppedAt)
    const after = tasks.filter((x) => x.scheduledFor >= stoppedAt)
    t.ok(before.length >= 1 && after.length >= 2, `${name}: tasks before the stop ${before.length}, after ${after.length}`)
    const last = secondsOf(before.at(-1)!.scheduledFor)
    const first = after[0]!
    const untasked = (secondsOf(first.scheduledFor) - last) / INTERVAL - 1
    const lagMs = first.createdAt.getTime() - first.scheduledFor.getTime()
    t.comment(`${name}: last before stop ${before.at(-1)!.scheduledFor.toISOString()}, first after ${first.scheduledFor.toISOString()} (lag ${lagMs} ms), ${untasked} due times without a task`)
    const dues = after.map((x) => secondsOf(x.scheduledFor))
    t.same([...new Set(dues.slice(1).map((d, i) => d - dues[i]!))], [INTERVAL], `${name}: no gap after the first task`)
    if (name === 'latest') {
      // Made when a later due time had passed already: the catch-up, for the latest missed time.
      t.ok(lagMs > GRACE_MS, 'latest: the first task after the stop was made late, as the catch-up')
      t.ok(untasked >= 2, 'latest: the earlier missed due times have no task')
      t.equal(after.slice(1).filter((x) => x.createdAt.getTime() - x.scheduledFor.getTime() > INTERVAL * 1000).length, 0,
        'latest: only one catch-up (every later task was made before the next due time)')
    } else {
      t.ok(lagMs < INTERVAL * 1000, 'none: the first task after the stop is an on-time one, not a catch-up')
      t.ok(untasked >= 3, 'none: every missed due time is left without a task')
    }
  }
})
