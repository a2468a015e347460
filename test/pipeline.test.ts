import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'

t.test('an echo task created over HTTP is read back completed with its payload as the result', async (t) => {
  const h = await startHarness(t, { worker: true })
  const payload = { hello: 'world', n: [1, 2, 3], nested: { ok: true } }
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload } })
  t.equal(res.statusCode, 202)
  const created = res.json()
  t.equal(res.headers.location, `/v1/tasks/${created.id}`)
  t.equal(created.status, 'queued')
  t.match(created.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-/, 'a UUIDv7 id')
  const [done] = await h.waitForTerminal([created.id])
  t.equal(done!.status, 'completed')
  t.same(done!.result, payload)
  t.equal(done!.attempts, 1)
  t.ok(done!.startedAt && done!.finishedAt)
  const attempts = (await h.app.inject({ url: `/v1/tasks/${created.id}/attempts` })).json().items
  t.equal(attempts.length, 1)
  t.equal(attempts[0].outcome, 'completed')
  t.type(attempts[0].durationMs, 'number')
})

t.test('a sleep task that outlives its timeout fails every attempt and ends failed with a timeout error', async (t) => {
  const h = await startHarness(t, { worker: true })
  const task = await h.createTask({
    type: 'sleep', payload: { ms: 5_000 }, timeoutMs: 100, maxAttempts: 3, backoff: { type: 'fixed', delayMs: 50 },
  })
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'failed')
  t.equal(done!.attempts, 3)
  t.equal((done!.error as { code: string }).code, 'TIMEOUT')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${task.id}/attempts` })).json().items
  t.same(attempts.map((a: { attempt: number }) => a.attempt), [1, 2, 3])
  t.same(attempts.map((a: { outcome: string, error: { code: string } }) => [a.outcome, a.error.code]), [['failed', 'TIMEOUT'], ['failed', 'TIMEOUT'], ['failed', 'TIMEOUT']])
})

t.test('http tasks: 5xx is retried until it succeeds, an unexpected 4xx fails at once', async (t) => {
  let hits = 0
  const server = createServer((req, res) => {
    if (req.url === '/flaky') {
      hits++
      res.writeHead(hits <= 2 ? 500 : 200, { 'content-type': 'application/json' })
      return res.end(JSON.stringify({ hit: hits }))
    }
    if (req.url === '/binary') {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      return res.end(Buffer.from([0x50, 0x4b, 0x00, 0x00, 0xff, 0xfe]))
    }
    res.writeHead(404).end('nope')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  const h = await startHarness(t, { worker: true, env: { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })

  const backoff = { type: 'fixed', delayMs: 50 }
  const flaky = await h.createTask({ type: 'http', payload: { method: 'GET', url: `${base}/flaky` }, backoff })
  const missing = await h.createTask({ type: 'http', payload: { method: 'GET', url: `${base}/missing` }, backoff })
  const binary = await h.createTask({ type: 'http', payload: { method: 'GET', url: `${base}/binary` }, backoff })
  const [f, m, b] = await h.waitForTerminal([flaky.id, missing.id, binary.id])
  t.equal(b!.status, 'completed', 'a body with NUL bytes is stored, not a failed write')
  t.equal(b!.attempts, 1)
  t.equal(f!.status, 'completed')
  t.equal(f!.attempts, 3)
  t.match(f!.result, { status: 200, body: { hit: 3 } })
  t.equal(m!.status, 'failed')
  t.equal(m!.attempts, 1)
  t.equal((m!.error as { code: string }).code, 'HTTP_UNEXPECTED_STATUS')
})

t.test('the http task refuses loopback and private addresses unless allowed', async (t) => {
  const h = await startHarness(t, { worker: true })
  const loop = await h.createTask({ type: 'http', payload: { method: 'GET', url: `http://127.0.0.1:${h.config.PORT || 9}/` } })
  const meta = await h.createTask({ type: 'http', payload: { method: 'GET', url: 'http://169.254.169.254/latest/meta-data' } })
  const named = await h.createTask({ type: 'http', payload: { method: 'GET', url: 'http://localhost:9/' } })
  const done = await h.waitForTerminal([loop.id, meta.id, named.id])
  for (const task of done) {
    t.equal(task.status, 'failed')
    t.equal(task.attempts, 1, 'not retried')
    t.equal((task.error as { code: string }).code, 'FORBIDDEN_ADDRESS')
  }
})

t.test('a delayed task does not start before runAt', async (t) => {
  const h = await startHarness(t, { worker: true })
  const delayed = await h.createTask({ type: 'echo', payload: {}, delayMs: 1_200 })
  const at = new Date(Date.now() + 1_000).toISOString()
  const scheduled = await h.createTask({ type: 'echo', payload: {}, runAt: at })
  t.equal(scheduled.runAt, at)
  const done = await h.waitForTerminal([delayed.id, scheduled.id])
  for (const task of done) {
    t.equal(task.status, 'completed')
    t.ok(new Date(task.startedAt as string) >= new Date(task.runAt as string), `started ${task.startedAt} not before ${task.runAt}`)
  }
})

t.test('higher priority runs first when a queue is backed up', async (t) => {
  const h = await startHarness(t)
  const low = []
  const critical = []
  for (let i = 0; i < 5; i++) low.push(await h.createTask({ type: 'echo', payload: { i }, priority: 'low' }))
  for (let i = 0; i < 5; i++) critical.push(await h.createTask({ type: 'echo', payload: { i }, priority: 'critical' }))
  const normal = await h.createTask({ type: 'echo', payload: {}, priority: 'normal' })
  await h.startWorker({ TASKLANE_QUEUES: 'default:1' })
  const done = await h.waitForTerminal([...low, ...critical, normal].map((x) => x.id))
  const order = done.sort((a, b) => String(a.startedAt).localeCompare(String(b.startedAt))).map((x) => x.priority)
  t.same(order, ['critical', 'critical', 'critical', 'critical', 'critical', 'normal', 'low', 'low', 'low', 'low', 'low'])
})
