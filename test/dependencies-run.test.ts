import { createServer } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import t from 'tap'
import type { TaskHandler } from '../services/worker/task-handler.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'

// Graphs of tasks run by real workers on the real services: results flow down, failures and
// cancels follow each dependent's policy, retries bring the failed part of a graph back.

type Task = {
  id: string, status: string, result: unknown, error: { code: string, message: string } | null,
  dependsOn: string[], blockedBy: string[], startedAt: string | null, finishedAt: string | null,
}

const WORKER_ENV = { TASKLANE_QUEUES: 'default:10,http:5', TASKLANE_RECONCILER_INTERVAL_MS: '300', TASKLANE_RECONCILER_MIN_AGE_MS: '500' }

/** An HTTP receiver on 127.0.0.1 that counts the requests to each path. */
async function startReceiver (t: { teardown: (fn: () => unknown) => void }) {
  const hits = new Map<string, number>()
  const server = createServer((req, res) => {
    hits.set(req.url ?? '/', (hits.get(req.url ?? '/') ?? 0) + 1)
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ path: req.url }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as { port: number }
  return { url: (path: string) => `http://127.0.0.1:${port}${path}`, hits: (path: string) => hits.get(path) ?? 0 }
}

async function batch (h: Harness, tasks: unknown[]): Promise<Task[]> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks } })
  if (res.statusCode !== 202) throw new Error(`batch failed ${res.statusCode}: ${res.body}`)
  return res.json().items
}
const get = async (h: Harness, id: string): Promise<Task> => (await h.app.inject({ url: `/v1/tasks/${id}` })).json()
const attemptCount = async (h: Harness, id: string): Promise<number> =>
  (await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = ${id}`)[0]!.n

/** A sleep that fails at once: its timeout is far shorter than its sleep and it has one attempt. */
const FAILING = { type: 'sleep', payload: { ms: 2_000 }, timeoutMs: 50, maxAttempts: 1 }

t.test('a diamond: d runs after b and c, and its handler receives both results', async (t) => {
  const h = await startHarness(t)
  // The built-in echo, with the dependencies it received added to its result.
  const echo: TaskHandler<unknown> = async (ctx) => ({ payload: ctx.payload, dependencies: ctx.dependencies })
  await h.startWorker(WORKER_ENV, { handlers: new Map([['echo', echo]]) })
  const [a, b, c, d] = await batch(h, [
    { type: 'echo', payload: { name: 'a' } },
    { type: 'echo', payload: { name: 'b' }, dependsOn: ['#0'] },
    { type: 'echo', payload: { name: 'c' }, dependsOn: ['#0'] },
    { type: 'echo', payload: { name: 'd' }, dependsOn: ['#1', '#2'] },
  ])
  const done = await h.waitForTerminal([a!.id, b!.id, c!.id, d!.id])
  t.same(done.map((x) => x.status), ['completed', 'completed', 'completed', 'completed'])
  const [, bDone, cDone, dDone] = await Promise.all(done.map((x) => get(h, x.id)))
  t.same(dDone!.result, {
    payload: { name: 'd' },
    dependencies: {
      [b!.id]: { type: 'echo', status: 'completed', result: bDone!.result },
      [c!.id]: { type: 'echo', status: 'completed', result: cDone!.result },
    },
  }, 'd received the results of b and c, and only those (its direct dependencies)')
  t.same(Object.keys((bDone!.result as { dependencies: object }).dependencies), [a!.id], 'b received a')
  t.ok(dDone!.startedAt! >= bDone!.finishedAt! && dDone!.startedAt! >= cDone!.finishedAt!, 'd started after both had finished')
  t.same(dDone!.blockedBy, [])
  t.same(dDone!.dependsOn, [b!.id, c!.id])
})

t.test('a failing dependency: "fail" dependents fail down the graph without running, "run" dependents run', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })
  const receiver = await startReceiver(t)
  await h.spawnWorker(WORKER_ENV)
  const call = (path: string) => ({ type: 'http', payload: { method: 'POST', url: receiver.url(path) }, maxAttempts: 1 })
  const [f, x, y, z, w] = await batch(h, [
    FAILING,
    { ...call('/x'), dependsOn: ['#0'] }, // fail (the default)
    { ...call('/y'), dependsOn: ['#1'] }, // fail, one level further down
    { ...call('/z'), dependsOn: ['#0'], onDependencyFailure: 'run' },
    { ...call('/w'), dependsOn: ['#1'], onDependencyFailure: 'run' }, // runs once x was failed by the cascade
  ])
  const done = await h.waitForTerminal([f, x, y, z, w].map((task) => task!.id))
  t.same(done.map((task) => task.status), ['failed', 'failed', 'failed', 'completed', 'completed'])
  const [, xDone, yDone] = await Promise.all([f, x, y].map((task) => get(h, task!.id)))
  t.equal(xDone!.error?.code, 'DEPENDENCY_FAILED')
  t.match(xDone!.error?.message, f!.id, 'the error names the dependency')
  t.equal(yDone!.error?.code, 'DEPENDENCY_FAILED', 'the cascade goes on down the graph')
  t.match(yDone!.error?.message, x!.id)
  t.same([await attemptCount(h, x!.id), await attemptCount(h, y!.id)], [0, 0], 'failed dependents never had an attempt')
  await sleep(300)
  t.same(['/x', '/y', '/z', '/w'].map(receiver.hits), [0, 0, 1, 1], 'only the "run" dependents reached the receiver, once each')
})

t.test('cancel cascades like a failure; a retry brings the cascade-failed dependents back and the graph completes', async (t) => {
  const h = await startHarness(t)
  await h.spawnWorker(WORKER_ENV)
  const [a, b, c, d] = await batch(h, [
    // Long enough once retried that its dependents are seen waiting for it.
    { type: 'sleep', payload: { ms: 1_500 }, delayMs: 3_600_000 },
    { type: 'echo', dependsOn: ['#0'] },
    { type: 'echo', dependsOn: ['#1'] },
    { type: 'echo', dependsOn: ['#0'], onDependencyFailure: 'run' },
  ])
  const cancel = await h.app.inject({ method: 'POST', url: `/v1/tasks/${a!.id}/cancel` })
  t.equal(cancel.statusCode, 202)
  t.equal(cancel.json().status, 'cancelled')
  // b and c fail in the cancel's own transaction: no worker involved.
  t.same([(await get(h, b!.id)).status, (await get(h, c!.id)).status], ['failed', 'failed'])
  t.equal((await get(h, c!.id)).error?.code, 'DEPENDENCY_FAILED')
  const [dDone] = await h.waitForTerminal([d!.id])
  t.equal(dDone!.status, 'completed', 'the "run" dependent ran after the cancel')

  const refused = await h.app.inject({ method: 'POST', url: `/v1/tasks/${c!.id}/retry` })
  t.equal(refused.statusCode, 409, 'retrying c while b is failed is a conflict')

  const retry = await h.app.inject({ method: 'POST', url: `/v1/tasks/${a!.id}/retry` })
  t.equal(retry.statusCode, 202)
  const bBack = await get(h, b!.id)
  t.same([bBack.status, bBack.blockedBy], ['queued', [a!.id]], 'b waits for a again')
  t.same([(await get(h, c!.id)).status, (await get(h, c!.id)).blockedBy], ['queued', [b!.id]], 'c waits for b again')
  const done = await h.waitForTerminal([a!.id, b!.id, c!.id])
  t.same(done.map((x) => x.status), ['completed', 'completed', 'completed'], 'the whole graph completes after the retry')
})

t.test('cancelling a running dependency: its "fail" dependents fail once the worker records the cancel', async (t) => {
  const h = await startHarness(t)
  await h.spawnWorker(WORKER_ENV)
  const [a, b] = await batch(h, [
    { type: 'sleep', payload: { ms: 30_000 } },
    { type: 'echo', dependsOn: ['#0'] },
  ])
  await waitFor(async () => (await get(h, a!.id)).status === 'running')
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${a!.id}/cancel` })).statusCode, 202)
  const [aDone, bDone] = await h.waitForTerminal([a!.id, b!.id])
  t.same([aDone!.status, bDone!.status], ['cancelled', 'failed'])
  t.equal((await get(h, b!.id)).error?.code, 'DEPENDENCY_FAILED')
})

t.test("a dependent's event stream shows blockedBy shrinking, then runs", async (t) => {
  const h = await startHarness(t)
  const base = await h.app.listen({ port: 0, host: '127.0.0.1' })
  const [a, b, d] = await batch(h, [
    { type: 'sleep', payload: { ms: 1 }, delayMs: 1_500 },
    { type: 'sleep', payload: { ms: 1 }, delayMs: 2_500 },
    { type: 'echo', dependsOn: ['#0', '#1'] },
  ])
  const events: EventSourceMessage[] = []
  const parser = createParser({ onEvent: (e) => { events.push(e) } })
  const reading = (async () => {
    const res = await fetch(`${base}/v1/tasks/${d!.id}/events`, { signal: AbortSignal.timeout(20_000) })
    const decoder = new TextDecoder()
    for await (const chunk of res.body!) parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }))
  })()
  await h.startWorker(WORKER_ENV)
  await reading
  const frames = events.filter((e) => e.event === 'status').map((e) => JSON.parse(e.data) as Task)
  const shapes = frames.map((f) => [f.status, f.blockedBy.length])
  // The frame of the last dependency's end re-reads the task, which may be running by then.
  const expected = [['queued', 2], ['queued', 1], ['queued', 0], ['running', 0], ['completed', 0]]
  t.ok([JSON.stringify(expected), JSON.stringify(expected.filter((_, i) => i !== 2))].includes(JSON.stringify(shapes)),
    `queued with blockedBy 2, then 1 (then 0), then running and completed: ${JSON.stringify(shapes)}`)
  t.same(frames[1]!.blockedBy, [b!.id], 'a finished first, so b is what is left')
  t.not(frames[1]!.blockedBy, a!.id)
})

t.test('many to many: 20 tasks each waiting for the same 20, finishing at once, all run once', async (t) => {
  const h = await startHarness(t)
  await h.spawnWorker({ ...WORKER_ENV, TASKLANE_QUEUES: 'default:20' })
  const sources = Array.from({ length: 20 }, (_, i) => ({ type: 'echo', payload: { source: i }, delayMs: 500 }))
  // Every sink counts down on every source's finish: concurrent finishes update the same
  // sinks' rows, in different orders.
  const sinks = Array.from({ length: 20 }, (_, i) => ({ type: 'echo', payload: { sink: i }, dependsOn: sources.map((_, j) => `#${j}`) }))
  const ids = (await batch(h, [...sources, ...sinks])).map((x) => x.id)
  const done = await h.waitForTerminal(ids, 60_000)
  t.same(new Set(done.map((x) => x.status)), new Set(['completed']))
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = any(${ids}::uuid[])`
  t.equal(row!.n, ids.length, 'one attempt each')
})
