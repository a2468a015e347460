import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'
import { deletePrefixKeys, DRILL_ENV, FAST_RECOVERY_ENV, faultReport, judge, startPrivateRedis, submitDrillTasks, waitForTerminalCount, type DrillTask } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'

const RECOVERY_ENV = { ...DRILL_ENV, ...FAST_RECOVERY_ENV, TASKLANE_QUEUES: 'http:25' }

t.test('every Redis key of the prefix deleted mid-run: the reconciler restores the work from Postgres', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: { ...RECOVERY_ENV, TASKLANE_QUEUES: 'http:10' } })
  // A backlog first, so that the deletion takes queued jobs as well as running ones.
  const tasks = await submitDrillTasks(h, receiver.tasks('flushed-', 300, 30, 100))
  const worker = await h.startWorker()
  // Delete twice: early on, and again once the reconciler has restored the first loss.
  let deleted = 0
  for (const after of [40, 150]) {
    await waitForTerminalCount(h.sql, tasks, after, 20_000)
    deleted += await deletePrefixKeys(h.config.REDIS_URL, h.config.TASKLANE_QUEUE_PREFIX)
  }
  t.ok(deleted > 0, `deleted ${deleted} keys under ${h.config.TASKLANE_QUEUE_PREFIX}:`)

  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'redis keys deleted', report)
  const repaired = (await worker.registry.getSingleMetric('tasklane_reconciler_repaired_total')!.get()).values
  const total = repaired.reduce((sum, v) => sum + v.value, 0)
  t.ok(total > 0, `the reconciler counted its repairs: ${repaired.map((v) => `${v.labels.reason}=${v.value}`).join(' ')}`)
})

t.test('a private Redis stopped and restarted mid-run (no persistence): accepted tasks still complete', async (t) => {
  const redis = await startPrivateRedis(t)
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: { ...RECOVERY_ENV, REDIS_URL: redis.url } })
  await h.startWorker()
  const before = await submitDrillTasks(h, receiver.tasks('before-', 300, 20, 80))
  await waitForTerminalCount(h.sql, before, 60, 20_000)

  await redis.stop()
  // While Redis is down the API still accepts: the rows are in Postgres, nothing is enqueued.
  const during: DrillTask[] = []
  for (const { key, body } of receiver.tasks('during-', 20)) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: body })
    t.equal(res.statusCode, 202, 'accepted while Redis is down')
    during.push({ id: res.json().id, key })
  }
  const duringIds = during.map((x) => x.id)
  const [stillQueued] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id = any(${duringIds}::uuid[]) and status = 'queued'`
  t.equal(stillQueued!.n, during.length, 'stored as queued while Redis is down')
  await sleep(500)
  await redis.start()

  const tasks = [...before, ...during]
  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'redis restarted empty', report)
  const done = await h.sql<{ status: string }[]>`select status from tasks where id = any(${duringIds}::uuid[])`
  t.same(done.map((r) => r.status), during.map(() => 'completed'), 'the tasks accepted during the outage completed after Redis returned')
})
