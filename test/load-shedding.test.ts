import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createServer } from 'node:net'
import { setImmediate as yieldLoop } from 'node:timers/promises'
import t from 'tap'
import { startHarness, waitFor } from './helpers/harness.ts'

const PROBLEM = 'application/problem+json; charset=utf-8'

/** Keeps the event loop busy in slices, as a CPU-bound request storm would, for about `ms`. */
async function hogEventLoop (ms: number, sliceMs = 250): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    const sliceEnd = Date.now() + sliceMs
    while (Date.now() < sliceEnd) { /* busy */ }
    await yieldLoop()
  }
}

t.test('a slow event loop turns requests into 503 + Retry-After; probes stay up and /readyz says why', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '50' } })
  t.equal((await h.app.inject({ url: '/v1/task-types' })).statusCode, 200, 'served while the loop is idle')
  await hogEventLoop(2_500)
  const shed = await h.app.inject({ url: '/v1/task-types' })
  t.equal(shed.statusCode, 503, 'shed under pressure')
  t.equal(shed.headers['content-type'], PROBLEM)
  t.equal(shed.headers['retry-after'], '5')
  t.match(shed.json(), { code: 'OVERLOADED', detail: /overloaded/ })
  const created = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: {} } })
  t.equal(created.statusCode, 503, 'creation is shed too')
  t.equal((await h.sql`select count(*)::int as n from tasks`)[0]!.n, 0, 'and stores nothing')
  t.equal((await h.app.inject({ url: '/healthz' })).statusCode, 200, 'liveness is not shed')
  const ready = await h.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 503, 'readiness reflects the pressure')
  t.match(ready.json().checks, { pressure: /event loop delay/ })
  await waitFor(async () => (await h.app.inject({ url: '/v1/task-types' })).statusCode === 200, 15_000)
  t.equal((await h.app.inject({ url: '/readyz' })).json().checks.pressure, 'ok', 'recovers once the loop is free')
})

async function freePort (): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}

t.test('a failing dependency turns requests into 503 + Retry-After until it answers again', async (t) => {
  const port = await freePort()
  const redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  t.teardown(async () => { if (redis.exitCode === null && redis.signalCode === null) { redis.kill('SIGKILL'); await once(redis, 'exit') } })
  const h = await startHarness(t, { env: { REDIS_URL: `redis://127.0.0.1:${port}`, TASKLANE_HEALTH_CHECK_INTERVAL_MS: '200' } })
  await waitFor(async () => (await h.app.inject({ url: '/v1/task-types' })).statusCode === 200, 10_000)

  redis.kill('SIGKILL')
  await once(redis, 'exit')
  const shed = await waitFor(async () => {
    const res = await h.app.inject({ url: '/v1/tasks' })
    return res.statusCode === 503 ? res : undefined
  }, 15_000)
  t.equal(shed.headers['retry-after'], '5', 'with Retry-After')
  t.equal(shed.headers['content-type'], PROBLEM)
  t.notMatch(shed.body, /127\.0\.0\.1|ECONNREFUSED|redis:\/\//, 'no host or driver detail')
  t.equal((await h.app.inject({ url: '/healthz' })).statusCode, 200, 'liveness is not shed')
  const ready = await h.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 503)
  t.notMatch(ready.body, /127\.0\.0\.1|:\d{4,5}/, 'readiness names the failing check, not the host')
  t.match(ready.json().checks, { redis: /unavailable|timeout/, postgres: 'ok' })
})
