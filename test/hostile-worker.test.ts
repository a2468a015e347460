import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { createLogger } from '../services/core/log.ts'
import { createHttpHandler } from '../services/worker/handlers/http-handler.ts'
import { createAddressPolicy, isPublicAddress } from '../services/core/outbound/address-policy.ts'
import { createOutboundClient } from '../services/core/outbound/outbound-client.ts'
import { PermanentTaskError } from '../services/worker/task-handler.ts'
import { startPrivateRedis } from './helpers/fault-tools.ts'
import { startHarness } from './helpers/harness.ts'

// Load shedding off: these tests are about input and faults, not a busy machine's event loop.
const STEADY = { TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '0' }

const LOCAL_TARGETS = { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' }

/** A local HTTP target that counts the requests it receives. */
async function target (t: { teardown: (fn: () => unknown) => void }, answer: (res: import('node:http').ServerResponse) => void) {
  let requests = 0
  const server: Server = createServer((_req, res) => { requests++; answer(res) })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, requests: () => requests }
}

t.test('the address guard judges IPv6 forms that embed an IPv4 address by that address', async (t) => {
  const refused = [
    '::127.0.0.1', '::7f00:1', '::10.0.0.1', '::ffff:127.0.0.1', '::ffff:0:127.0.0.1', '::ffff:0:a9fe:a9fe',
    '64:ff9b::127.0.0.1', '64:ff9b::a9fe:a9fe', '64:ff9b:1::1', '2002:7f00:1::', '2002:a9fe:a9fe::1', '2002:c0a8:101::',
    // Teredo with a loopback client (inverted in the last 32 bits) and with a private server.
    '2001:0:4136:e378:8000:63bf:80ff:fffe', '2001:0:a00:1:8000:63bf:f7f7:f7f7',
    '::', '::1', 'fe80::1', 'fd00::1',
  ]
  for (const address of refused) t.notOk(isPublicAddress(address), `${address} is not public`)
  const allowed = ['::8.8.8.8', '::ffff:8.8.8.8', '64:ff9b::8.8.8.8', '2002:808:808::1', '2001:0:4136:e378:8000:63bf:f7f7:f7f7', '2606:4700:4700::1111', '8.8.8.8']
  for (const address of allowed) t.ok(isPublicAddress(address), `${address} is public`)

  const client = createOutboundClient(createAddressPolicy({ allowPrivate: false }))
  const handler = createHttpHandler(client)
  t.teardown(() => client.close())
  for (const url of ['http://[::127.0.0.1]:9/', 'http://[64:ff9b::7f00:1]:9/', 'http://[2002:7f00:1::]:9/']) {
    const ctx = { taskId: 't', attempt: 1, maxAttempts: 1, deadline: new Date(), payload: { method: 'GET' as const, url }, signal: AbortSignal.timeout(5_000), progress: async () => {}, dependencies: {}, log: createLogger({ LOG_LEVEL: 'silent' } as never, {}) }
    const err = await handler(ctx).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof PermanentTaskError && err.code === 'FORBIDDEN_ADDRESS', `${url} is refused`)
  }
})

t.test('an http target answering JSON 10,000 levels deep: the task completes once, with the text', async (t) => {
  const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`
  const site = await target(t, (res) => res.writeHead(200, { 'content-type': 'application/json' }).end(deep))
  const h = await startHarness(t, { env: { ...STEADY, ...LOCAL_TARGETS }, worker: true })
  const task = await h.createTask({ type: 'http', payload: { method: 'GET', url: site.url }, maxAttempts: 3 })
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'completed', JSON.stringify(done!.error))
  t.equal(site.requests(), 1, 'the target was called once')
  t.equal(done!.attempts, 1)
  t.equal((done!.result as { body: unknown }).body, deep, 'the body is kept as text')
})

t.test("the http type's own timeoutMs fails with code TIMEOUT", async (t) => {
  const site = await target(t, () => { /* never answers */ })
  const h = await startHarness(t, { env: { ...STEADY, ...LOCAL_TARGETS }, worker: true })
  const task = await h.createTask({ type: 'http', payload: { method: 'GET', url: site.url, timeoutMs: 200 }, maxAttempts: 1 })
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'failed')
  t.match(done!.error, { code: 'TIMEOUT', message: /did not answer within 200 ms/ })
})

t.test('a worker given an unknown queue stops with one line and exit code 78', async (t) => {
  const worker = fileURLToPath(new URL('../services/worker/main.ts', import.meta.url))
  const run = spawnSync(process.execPath, [worker], { env: { ...process.env, TASKLANE_QUEUES: 'default,nope', METRICS_PORT: '0' }, encoding: 'utf8', timeout: 60_000 })
  t.equal(run.status, 78, run.stderr)
  t.same(run.stderr.trim().split('\n'), ['tasklane-worker: TASKLANE_QUEUES names queue "nope", but the known queues are: default, http'])
})

t.test('Redis down: queue reads and pause/resume answer 503 with Retry-After', async (t) => {
  const redis = await startPrivateRedis(t)
  const h = await startHarness(t, { env: { ...STEADY, REDIS_URL: redis.url } })
  t.equal((await h.app.inject({ url: '/v1/queues' })).statusCode, 200, 'answers while Redis is up')
  await redis.stop()
  for (const [method, url] of [['GET', '/v1/queues'], ['GET', '/v1/stats'], ['POST', '/v1/queues/default/pause'], ['POST', '/v1/queues/default/resume']] as const) {
    const res = await h.app.inject({ method, url })
    t.equal(res.statusCode, 503, `${method} ${url}: ${res.body}`)
    t.ok(res.headers['retry-after'], 'with Retry-After')
    t.equal(res.json().code, 'UNAVAILABLE')
  }
  await redis.start()
})

t.test('a stuck Postgres: a create whose batched write times out is a 503 with Retry-After', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  // Another session holds the table: the insert waits until the batcher gives up (20 s).
  const holder = await h.sql.reserve()
  await holder`begin`
  await holder`lock table tasks in access exclusive mode`
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo' } })
  await holder`rollback`
  holder.release()
  t.equal(res.statusCode, 503, res.body)
  t.ok(res.headers['retry-after'])
})
