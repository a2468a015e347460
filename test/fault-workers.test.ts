import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startHarness, waitFor } from './helpers/harness.ts'
import { DRILL_ENV, faultReport, judge, signalAndWait, submitDrillTasks, waitForTerminalCount } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'

// Short locks and a fast reconciler keep recovery within seconds; the defaults are minutes-safe.
const WORKER_ENV = {
  TASKLANE_QUEUES: 'http:15',
  TASKLANE_LOCK_DURATION_MS: '2000',
  TASKLANE_STALLED_INTERVAL_MS: '1000',
  TASKLANE_RECONCILER_INTERVAL_MS: '500',
  TASKLANE_RECONCILER_MIN_AGE_MS: '1000',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '4000',
}

t.test('SIGKILL of one of two worker processes mid-run: its tasks move to the other worker, the lost attempts show', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  const [victim] = await Promise.all([h.spawnWorker(WORKER_ENV), h.spawnWorker(WORKER_ENV)])
  const tasks = await submitDrillTasks(h, receiver.tasks('killed-', 300, 100, 300))
  // Kill while both are busy: a fifth of the work done, most of it still queued or running.
  await waitForTerminalCount(h.sql, tasks, 60)
  const exit = await signalAndWait(victim!, 'SIGKILL')
  t.equal(exit.signal, 'SIGKILL')

  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'worker SIGKILL', report)
  t.ok(report.executedMoreThanOnce > 0, 'the attempts the killed worker was running are executed again')
  t.ok(report.lostAttempts > 0, 'the attempts the killed worker was running are recorded as lost')
  const [lost] = await h.sql<{ taskId: string }[]>`select task_id as "taskId" from task_attempts where outcome = 'lost' limit 1`
  const attempts = (await h.app.inject({ url: `/v1/tasks/${lost!.taskId}/attempts` })).json().items as { outcome: string, error: { code: string } | null }[]
  t.same(attempts.map((a) => a.outcome), ['lost', 'completed'], 'the attempt history shows the lost attempt, then the one that completed')
  t.equal(attempts[0]!.error?.code, 'WORKER_LOST')
})

t.test('SIGTERM of a worker under load: exits 0 within the grace period; what it could not finish runs elsewhere at once', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  // Locks far longer than the test waits: a job that was not handed back would sit out the lock.
  const env = { ...WORKER_ENV, TASKLANE_LOCK_DURATION_MS: '120000', TASKLANE_STALLED_INTERVAL_MS: '60000', TASKLANE_RECONCILER_STALE_RUNNING_MS: '120000', TASKLANE_SHUTDOWN_GRACE_MS: '1500' }
  const [stopping] = await Promise.all([h.spawnWorker(env), h.spawnWorker(env)])
  // Long tasks that cannot finish within the grace period, held by both workers (15 slots
  // each), then 300 short ones arriving while the worker stops.
  const long = await submitDrillTasks(h, Array.from({ length: 20 }, (_, i) => ({ key: `long-${i}`, body: receiver.task(`long-${i}`, { ms: 6000, maxAttempts: 3 }) })))
  const longIds = long.map((x) => x.id)
  await waitFor(async () => {
    const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id = any(${longIds}::uuid[]) and status = 'running'`
    return row!.n === long.length
  })
  const submitting = submitDrillTasks(h, receiver.tasks('short-', 300, 50, 200))
  await sleep(500) // the stop begins with submissions in flight
  const sentAt = Date.now()
  const exit = await signalAndWait(stopping!, 'SIGTERM')
  const tookMs = Date.now() - sentAt
  t.equal(exit.code, 0, 'the worker exits 0')
  t.comment(`worker stopped ${tookMs} ms after SIGTERM (grace 1500 ms)`)

  const tasks = [...long, ...await submitting]
  await waitForTerminalCount(h.sql, tasks, tasks.length, 30_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'worker SIGTERM', report)
  const released = await h.sql<{ taskId: string }[]>`select task_id as "taskId" from task_attempts where outcome = 'released'`
  t.ok(released.length > 0, 'the stopping worker released the long tasks it could not finish')
  t.same(released.filter(({ taskId }) => !longIds.includes(taskId)), [], 'only long tasks are released; short ones finished within the grace')
  const rerun = long.filter((x) => receiver.executions(x.key).length === 2).length
  t.equal(rerun, released.length, 'each released task ran once more, elsewhere, and only those')
})
