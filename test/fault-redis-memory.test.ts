import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'
import { DRILL_ENV, FAST_RECOVERY_ENV, faultReport, judge, startPrivateRedis, submitDrillTasks, waitForTerminalCount, type DrillTask } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'

const ENV = { ...DRILL_ENV, ...FAST_RECOVERY_ENV, TASKLANE_QUEUES: 'http:25' }

t.test('Redis at its maxmemory with noeviction mid-run: every create is 202 (stored, then reconciled) or 503, none lost', async (t) => {
  const redis = await startPrivateRedis(t, ['--maxmemory-policy', 'noeviction'])
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: { ...ENV, REDIS_URL: redis.url } })
  const worker = await h.startWorker()
  const admin = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  t.teardown(() => admin.disconnect())

  const before = await submitDrillTasks(h, receiver.tasks('before-', 100, 50, 150))
  // Full: the limit goes just under what Redis holds now, so any command that needs memory is
  // refused with OOM (noeviction), the producer's adds and the workers' moves alike, until
  // the workers' deletions bring it under again.
  const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1])
  await admin.config('SET', 'maxmemory', String(used - 256 * 1024))
  await t.rejects(admin.set(`${h.config.TASKLANE_QUEUE_PREFIX}:filler`, 'x'.repeat(100_000)), /OOM/, 'Redis refuses writes: it is at its maxmemory')

  const statuses = new Map<number, number>()
  const accepted: DrillTask[] = []
  const refused: string[] = []
  const full = receiver.tasks('full-', 300, 50, 150)
  let next = 0
  await Promise.all(Array.from({ length: 25 }, async () => {
    while (next < full.length) {
      const { key, body } = full[next++]!
      const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: body })
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1)
      if (res.statusCode === 202) accepted.push({ id: res.json().id, key })
      else refused.push(key)
    }
  }))
  const stillFull = await admin.set(`${h.config.TASKLANE_QUEUE_PREFIX}:filler`, 'x'.repeat(100_000)).then(() => false, () => true)
  await sleep(1_000)
  await admin.config('SET', 'maxmemory', '0')
  t.comment(`creates while Redis was full: ${[...statuses].map(([s, n]) => `${s}x${n}`).join(' ')}; still full after them: ${stillFull}`)
  t.same([...statuses.keys()].filter((s) => s !== 202 && s !== 503), [], 'every create answered 202 or 503')

  const tasks = [...before, ...accepted]
  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  judge(t, 'redis at maxmemory', await faultReport(h.sql, tasks, receiver), 300)
  // A 503 promised nothing; if its row was stored anyway it must still run, not sit forever.
  const refusedUrls = refused.map((key) => `${receiver.base}/exec/${key}`)
  const [orphans] = await h.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where payload ->> 'url' = any(${refusedUrls}) and status <> 'completed'`
  t.equal(orphans!.n, 0, 'no create answered 503 left a task behind that never runs')
  const repaired = (await worker.registry.getSingleMetric('tasklane_reconciler_repaired_total')!.get()).values
  t.comment(`reconciler repairs: ${repaired.map((v) => `${v.labels.reason}=${v.value}`).join(' ') || 'none'}`)
  const requeued = repaired.find((v) => v.labels.reason === 'queued_job_missing')?.value ?? 0
  // A create whose dispatch slot Redis could not reserve stores the task held; the admission
  // loop dispatches it later. An enqueue refused after the reservation leaves it to the reconciler.
  const admitted = (await worker.registry.getSingleMetric('tasklane_admission_admitted_total')!.get()).values.reduce((sum, v) => sum + v.value, 0)
  t.comment(`admitted later by the admission loop: ${admitted}`)
  t.ok(requeued + admitted > 0, 'Redis refused some dispatches, and those tasks were dispatched later from Postgres (reconciler or admission loop)')
})
