import type { InjectOptions } from 'fastify'
import t from 'tap'
import { SLOT_SPAN } from '../services/core/queues/job-options.ts'
import { startHarness } from './helpers/harness.ts'

const PROBLEM = 'application/problem+json; charset=utf-8'

t.test('bad input gets a problem document with the right status and stores nothing', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_BODY_LIMIT_BYTES: '4096', TASKLANE_MAX_PAYLOAD_BYTES: '1024' } })
  const json = { 'content-type': 'application/json' }
  const cases: { name: string, status: number, request: InjectOptions, code?: string, errorPath?: string }[] = [
    { name: 'malformed JSON', status: 400, request: { method: 'POST', url: '/v1/tasks', headers: json, payload: '{"type": "echo",' } },
    { name: 'empty JSON body', status: 400, request: { method: 'POST', url: '/v1/tasks', headers: json, payload: '' } },
    { name: 'missing type', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { payload: {} } }, errorPath: '/type' },
    { name: 'wrong field type', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', maxAttempts: 'many' } }, errorPath: '/maxAttempts' },
    { name: 'unknown field', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', colour: 'red' } }, errorPath: '/colour' },
    { name: 'bad priority', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', priority: 'urgent' } }, errorPath: '/priority' },
    { name: 'runAt and delayMs together', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', runAt: new Date().toISOString(), delayMs: 5 } }, errorPath: '/delayMs' },
    { name: 'runAt not a date', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', runAt: 'tomorrow' } }, errorPath: '/runAt' },
    { name: 'payload violating its type schema', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'sleep', payload: { ms: -1 } } }, errorPath: '/payload/ms' },
    { name: 'http payload with a bad url', status: 400, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'http', payload: { method: 'GET', url: 'ftp://x' } } }, errorPath: '/payload/url' },
    { name: 'unknown task type', status: 422, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'teleport', payload: {} } } },
    { name: 'body over the limit', status: 413, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { blob: 'x'.repeat(8_000) } } } },
    { name: 'payload over the per-task limit', status: 413, request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { blob: 'x'.repeat(2_000) } } } },
    { name: 'wrong content type', status: 415, request: { method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'text/plain' }, payload: 'type=echo' } },
    { name: 'form content type', status: 415, request: { method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'application/x-www-form-urlencoded' }, payload: 'type=echo' } },
    { name: 'unknown route', status: 404, request: { method: 'GET', url: '/v1/nothing-here' } },
    { name: 'method not allowed', status: 405, request: { method: 'PUT', url: '/v1/tasks' } },
    { name: 'unknown task id', status: 404, request: { method: 'GET', url: '/v1/tasks/0193e1d2-0000-7000-8000-000000000000' } },
    { name: 'task id that is not a uuid', status: 404, request: { method: 'GET', url: '/v1/tasks/..%2f..%2fetc%2fpasswd' } },
    { name: 'bad list limit', status: 400, request: { method: 'GET', url: '/v1/tasks?limit=501' } },
    { name: 'bad list status', status: 400, request: { method: 'GET', url: '/v1/tasks?status=sleeping' } },
    { name: 'bad cursor', status: 400, request: { method: 'GET', url: '/v1/tasks?cursor=not-a-cursor' } },
    { name: 'bad idempotency key', status: 400, request: { method: 'POST', url: '/v1/tasks', headers: { 'idempotency-key': 'x'.repeat(300) }, payload: { type: 'echo' } } },
  ]
  for (const c of cases) {
    const res = await h.app.inject(c.request)
    t.equal(res.statusCode, c.status, `${c.name}: status`)
    t.equal(res.headers['content-type'], PROBLEM, `${c.name}: problem document`)
    const body = res.json()
    t.equal(body.status, c.status, `${c.name}: status in body`)
    t.type(body.title, 'string')
    t.type(body.type, 'string')
    t.notMatch(res.body, /at .*\.ts:\d+|node_modules|SELECT |INSERT /i, `${c.name}: no internals`)
    if (c.errorPath) t.ok(body.errors?.some((e: { path: string }) => e.path === c.errorPath), `${c.name}: errors[] names ${c.errorPath} (${JSON.stringify(body.errors)})`)
  }
  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from tasks`
  const count = row?.count
  t.equal(count, 0, 'no task stored by any rejected request')
})

t.test('list: filters, newest first, keyset pagination', async (t) => {
  const h = await startHarness(t)
  const created = []
  for (let i = 0; i < 7; i++) created.push(await h.createTask({ type: i % 2 ? 'sleep' : 'echo', payload: i % 2 ? { ms: 1 } : { i } }))
  const newestFirst = created.map((x) => x.id).reverse()

  const seen: string[] = []
  let cursor: string | null = null
  do {
    const url: string = `/v1/tasks?limit=3${cursor ? `&cursor=${cursor}` : ''}`
    const page = (await h.app.inject({ url })).json()
    t.ok(page.items.length <= 3)
    seen.push(...page.items.map((x: { id: string }) => x.id))
    cursor = page.nextCursor
  } while (cursor)
  t.same(seen, newestFirst, 'every task once, newest first')

  const sleeps = (await h.app.inject({ url: '/v1/tasks?type=sleep' })).json()
  t.equal(sleeps.items.length, 3)
  t.ok(sleeps.items.every((x: { type: string }) => x.type === 'sleep'))
  const queued = (await h.app.inject({ url: '/v1/tasks?status=queued&queue=default' })).json()
  t.equal(queued.items.length, 7)
  const none = (await h.app.inject({ url: `/v1/tasks?createdAfter=${encodeURIComponent(new Date(Date.now() + 60_000).toISOString())}` })).json()
  t.same(none, { items: [], nextCursor: null })
})

t.test('task types, health and readiness', async (t) => {
  const h = await startHarness(t)
  const types = (await h.app.inject({ url: '/v1/task-types' })).json().items
  t.same(types.map((x: { name: string }) => x.name).sort(), ['echo', 'http', 'sleep'])
  const http = types.find((x: { name: string }) => x.name === 'http')
  t.equal(http.queue, 'http')
  t.match(http.defaults, { maxAttempts: 3, backoff: { type: 'exponential', delayMs: 2000 } })
  t.ok(http.payloadSchema.properties.url)

  t.same((await h.app.inject({ url: '/healthz' })).json(), { status: 'ok' })
  const ready = await h.app.inject({ url: '/readyz' })
  t.equal(ready.statusCode, 200)
  t.match(ready.json(), { status: 'ok', checks: { postgres: 'ok', redis: 'ok' } })
})

t.test('a create stores the contract defaults and the job carries priority, delay and attempts', async (t) => {
  const h = await startHarness(t)
  const task = await h.createTask({ type: 'http', payload: { method: 'GET', url: 'https://example.com/' }, priority: 'high', delayMs: 60_000 })
  t.match(task, { status: 'queued', priority: 'high', attempts: 0, maxAttempts: 3, timeoutMs: 30_000, queue: 'http', result: null, error: null })
  const job = await h.deps.queues.get('http').getJob(task.id)
  t.ok(job, 'a BullMQ job whose id is the task id')
  t.equal(job!.opts.priority, 2 * SLOT_SPAN, 'high, the tenant\'s first dispatched task')
  t.equal(job!.opts.attempts, 3)
  t.ok((job!.opts.delay ?? 0) > 55_000, 'delayed until runAt')
  t.equal(await job!.getState(), 'delayed')
})
