import { randomUUID } from 'node:crypto'
import t from 'tap'
import { createTaskTransitions } from '../services/core/tasks/transitions.ts'
import { createTaskRunner } from '../services/worker/task-runner.ts'
import { createWorkers } from '../services/worker/workers.ts'
import { createHandlers } from '../services/worker/handlers/index.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { signalAndWait } from './helpers/fault-tools.ts'
import { testLogger } from './helpers/test-config.ts'

// The reconciler and BullMQ's own recovery stay out of the way unless a test asks for them.
const ENV = { TASKLANE_RECONCILER_INTERVAL_MS: '0' }
const transitionsOf = (h: Harness, maxLostAttempts = 3) => createTaskTransitions(h.sql, { maxLostAttempts })
const attemptsOf = (h: Harness, id: string) =>
  h.sql<{ attempt: number, outcome: string, code: string | null }[]>`
    select attempt, outcome, error->>'code' as code from task_attempts where task_id = ${id} order by attempt`
/** A task in Postgres whose job is gone, so no worker of the harness takes it. */
async function storedTask (h: Harness, body: Record<string, unknown> = { type: 'echo', payload: {} }) {
  const task = await h.createTask(body)
  await h.deps.queues.get('default').remove(task.id)
  return task
}

t.test('a claim run again with its lease id (an ambiguous commit retried) answers the same attempt', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const transitions = transitionsOf(h)
  const { id } = await storedTask(h)
  const leaseId = randomUUID()
  const first = await transitions.claim({ taskId: id, workerId: 'w1', leaseId })
  const again = await transitions.claim({ taskId: id, workerId: 'w1', leaseId })
  t.equal(first?.outcome, 'claimed')
  t.equal(again?.outcome, 'claimed')
  t.equal(again?.task.attempts, 1, 'still attempt 1: no attempt 2 opened')
  t.same(await attemptsOf(h, id), [{ attempt: 1, outcome: 'running', code: null }], 'and attempt 1 is not marked lost')
  t.equal(await transitions.complete(id, 1, { result: { ok: 1 }, durationMs: 1, leaseId }), true)
  t.equal(await transitions.claim({ taskId: id, workerId: 'w1', leaseId }), undefined, 'a retried claim of a finished task claims nothing')
  t.equal(await transitions.claim({ taskId: id, workerId: 'w2', leaseId: randomUUID() }), undefined)
})

t.test('a finish names its lease: a worker whose lease was taken over cannot record', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const transitions = transitionsOf(h)
  const { id } = await storedTask(h)
  const stale = randomUUID()
  await transitions.claim({ taskId: id, workerId: 'w1', leaseId: stale })
  // The stale lease's attempt is superseded; even naming the current attempt number it is refused.
  const current = randomUUID()
  const taken = await transitions.claim({ taskId: id, workerId: 'w2', leaseId: current })
  t.equal(taken?.task.attempts, 2)
  t.equal(await transitions.complete(id, 2, { result: { by: 'stale' }, durationMs: 1, leaseId: stale }), false)
  t.equal(await transitions.scheduleRetry(id, 2, { error: { message: 'x', code: 'X' }, runAt: new Date(), durationMs: 1, leaseId: stale }), false)
  t.equal(await transitions.complete(id, 2, { result: { by: 'current' }, durationMs: 1, leaseId: current }), true)
  t.match(await h.getTask(id), { status: 'completed', result: { by: 'current' } })
})

t.test('a task that loses its worker TASKLANE_MAX_LOST_ATTEMPTS times ends failed WORKER_LOST', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const transitions = transitionsOf(h, 3)
  const { id } = await storedTask(h)
  const claim = () => transitions.claim({ taskId: id, workerId: 'w', leaseId: randomUUID() })
  // Each claim of a running task is a redelivery after its worker vanished.
  t.same((await Promise.all([claim()])).map((c) => c?.outcome), ['claimed'])
  t.equal((await claim())?.outcome, 'claimed', 'lost once')
  t.equal((await claim())?.outcome, 'claimed', 'lost twice')
  const last = await claim()
  t.equal(last?.outcome, 'worker_lost', 'the third loss ends it')
  t.match(await h.getTask(id), { status: 'failed', attempts: 3, error: { code: 'WORKER_LOST' } })
  t.same((await attemptsOf(h, id)).map((a) => [a.outcome, a.code]), [['lost', 'WORKER_LOST'], ['lost', 'WORKER_LOST'], ['lost', 'WORKER_LOST']])
  t.equal(await claim(), undefined, 'a failed task is never claimed again')

  // A release at shutdown is not a loss, and the reconciler's requeue counts like a redelivery.
  const other = await storedTask(h)
  const c1 = await transitions.claim({ taskId: other.id, workerId: 'w', leaseId: randomUUID() })
  t.equal(await transitions.release(other.id, c1!.task.attempts, 5), true)
  for (let i = 0; i < 2; i++) {
    const c = await transitions.claim({ taskId: other.id, workerId: 'w', leaseId: randomUUID() })
    t.match(await transitions.requeueLost(other.id, c!.task.attempts, 0), { outcome: 'requeued' })
  }
  const c4 = await transitions.claim({ taskId: other.id, workerId: 'w', leaseId: randomUUID() })
  t.same(await transitions.requeueLost(other.id, c4!.task.attempts, 0), { outcome: 'worker_lost' })
  t.same((await attemptsOf(h, other.id)).map((a) => a.outcome), ['released', 'lost', 'lost', 'lost'])
  t.match(await h.getTask(other.id), { status: 'failed', error: { code: 'WORKER_LOST' } })
  // A client's retry gives it a fresh budget of losses too.
  const retried = await h.app.inject({ method: 'POST', url: `/v1/tasks/${other.id}/retry` })
  t.equal(retried.statusCode, 202)
  const [row] = await h.sql<{ lost: number }[]>`select lost_attempts as lost from tasks where id = ${other.id}`
  t.equal(row?.lost, 0)
})

t.test('a worker without the handler hands the job back; a worker with it runs the task once', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const log = testLogger(h.config, 'tasklane-worker')
  const transitions = transitionsOf(h)
  const finished: string[] = []
  const start = (handlers: ReturnType<typeof createHandlers>['handlers'], workerId: string) => {
    const runner = createTaskRunner({ transitions, handlers, workerId, log, maxResultBytes: h.config.TASKLANE_MAX_RESULT_BYTES, events: { finished: (_task, outcome) => { finished.push(`${workerId}:${outcome}`) } } })
    const workers = createWorkers({ config: h.config, queues: [{ name: 'default', concurrency: 2 }], processor: runner, log, workerId })
    t.teardown(() => workers.close(true))
    return workers
  }
  const all = createHandlers(h.config)
  t.teardown(() => all.close())
  // An older worker that knows every type but echo (a rolling deploy).
  const old = new Map(all.handlers)
  old.delete('echo')
  start(old, 'old')
  const { id } = await h.createTask({ type: 'echo', payload: { n: 1 } })
  await waitFor(async () => (await h.deps.queues.get('default').getJobCounts('delayed')).delayed === 1, 10_000)
  t.match(await h.getTask(id), { status: 'queued', attempts: 0 }, 'the task stays queued with no attempt spent')
  start(all.handlers, 'new')
  const [done] = await h.waitForTerminal([id], 20_000)
  t.match(done, { status: 'completed', attempts: 1, result: { n: 1 } })
  t.same(finished, ['new:completed'])
})

t.test('an outcome the transitions refuse is neither logged as final nor counted', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const log = testLogger(h.config, 'tasklane-worker')
  const transitions = transitionsOf(h)
  const finished: string[] = []
  const runner = createTaskRunner({
    transitions, handlers: createHandlers(h.config).handlers, workerId: 'w1', log, maxResultBytes: h.config.TASKLANE_MAX_RESULT_BYTES, events: { finished: (_task, outcome) => { finished.push(outcome) } },
  })
  const workers = createWorkers({ config: h.config, queues: [{ name: 'default', concurrency: 2 }], processor: runner, log, workerId: 'w1' })
  t.teardown(() => workers.close(true))
  const { id } = await h.createTask({ type: 'sleep', payload: { ms: 1500 } })
  await waitFor(async () => (await h.getTask(id)).status === 'running')
  // A duplicate delivery takes the task over while the first attempt still runs, and finishes it.
  const takeover = await transitions.claim({ taskId: id, workerId: 'w2', leaseId: randomUUID() })
  t.equal(await transitions.complete(id, takeover!.task.attempts, { result: { by: 'w2' }, durationMs: 1 }), true)
  await waitFor(async () => (await h.deps.queues.get('default').getJobCounts('completed')).completed === 1, 10_000)
  t.same(finished, [], 'the first attempt finished after the task moved on: not counted')
  t.match(await h.getTask(id), { status: 'completed', result: { by: 'w2' } })
})

t.test('a task that kills its worker every time ends failed WORKER_LOST instead of running forever', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const env = { TASKLANE_LOCK_DURATION_MS: '1000', TASKLANE_STALLED_INTERVAL_MS: '500', TASKLANE_MAX_LOST_ATTEMPTS: '3', ...ENV }
  const { id } = await h.createTask({ type: 'sleep', payload: { ms: 60_000 }, maxAttempts: 10 })
  let kills = 0
  // Each worker is killed as soon as it runs the task: what a task that exits or exhausts its process does.
  while ((await h.getTask(id)).status !== 'failed' && kills < 6) {
    const worker = await h.spawnWorker(env)
    const ran = await waitFor(async () => {
      const task = await h.getTask(id)
      return task.status === 'failed' ? 'failed' : task.status === 'running' && task.attempts > kills ? 'running' : undefined
    }, 20_000)
    if (ran === 'failed') { await signalAndWait(worker, 'SIGKILL'); break }
    await signalAndWait(worker, 'SIGKILL')
    kills++
  }
  t.equal(kills, 3, 'three workers were lost to it')
  const task = await h.getTask(id)
  t.match(task, { status: 'failed', attempts: 3, error: { code: 'WORKER_LOST' } })
  t.same((await attemptsOf(h, id)).map((a) => a.outcome), ['lost', 'lost', 'lost'])
})
