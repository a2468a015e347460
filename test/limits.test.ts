import t from 'tap'
import { buildServer } from '../services/api/build-server.ts'
import { openApiDeps } from '../services/api/open-deps.ts'
import { bearer } from './helpers/auth.ts'
import { startHarness } from './helpers/harness.ts'
import { testLogger } from './helpers/test-config.ts'

const KEY_A = 'tenant-a-key-for-limits-0001'
const KEY_B = 'tenant-b-key-for-limits-0002'
const PROBLEM = 'application/problem+json; charset=utf-8'

t.test('task creation over the per-tenant rate limit is a 429, counted across two API instances sharing Redis', async (t) => {
  const h = await startHarness(t, {
    env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}`, TASKLANE_RATE_LIMIT_MAX: '6', TASKLANE_RATE_LIMIT_WINDOW_MS: '120000' },
  })
  // A second replica: its own connections and app, the same Redis, database and prefix.
  const otherDeps = openApiDeps(h.config, testLogger(h.config, 'tasklane-api-2'))
  const other = await buildServer(otherDeps, testLogger(h.config, 'tasklane-api-2'))
  t.teardown(async () => { await other.close(); await otherDeps.close() })
  await other.ready()
  const replicas = [h.app, other]

  const create = (app: typeof h.app, key: string, i: number) =>
    app.inject({ method: 'POST', url: '/v1/tasks', headers: bearer(key), payload: { type: 'echo', payload: { i } } })

  for (let i = 0; i < 6; i++) {
    const res = await create(replicas[i % 2]!, KEY_A, i)
    t.equal(res.statusCode, 202, `create ${i + 1} of 6 is accepted on replica ${i % 2}`)
    t.equal(res.headers['x-ratelimit-limit'], '6')
    t.equal(res.headers['x-ratelimit-remaining'], String(5 - i), 'one counter for both replicas')
    t.ok(Number(res.headers['x-ratelimit-reset']) > 0)
  }
  for (const app of replicas) {
    const res = await create(app, KEY_A, 99)
    t.equal(res.statusCode, 429, 'the seventh create is refused on either replica')
    t.equal(res.headers['content-type'], PROBLEM)
    t.ok(Number(res.headers['retry-after']) > 0, 'with Retry-After')
    t.equal(res.headers['x-ratelimit-remaining'], '0')
    t.match(res.json(), { status: 429, code: 'RATE_LIMITED', title: 'Too Many Requests' })
  }
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers: bearer(KEY_A), payload: { tasks: [{ type: 'echo' }] } })
  t.equal(res.statusCode, 429, 'a batch draws on the same allowance')
  t.equal((await h.sql`select count(*)::int as n from tasks where tenant = 'acme'`)[0]!.n, 6, 'no refused create stored a row')

  t.equal((await create(other, KEY_B, 1)).statusCode, 202, 'another tenant has its own allowance')
  t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(KEY_A) })).statusCode, 200, 'reading is not limited')

  const keys = await h.deps.redis.keys(`${h.config.TASKLANE_QUEUE_PREFIX}:rate-limit:*`)
  t.same(keys.sort(), [`${h.config.TASKLANE_QUEUE_PREFIX}:rate-limit:create:acme`, `${h.config.TASKLANE_QUEUE_PREFIX}:rate-limit:create:globex`],
    'one counter per tenant, under the queue prefix')
  await h.deps.redis.del(...keys)
})

t.test('size limits: body 413, payload 413, list page and batch size 400', async (t) => {
  const h = await startHarness(t, {
    env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A}`, TASKLANE_BODY_LIMIT_BYTES: '4096', TASKLANE_MAX_PAYLOAD_BYTES: '1024' },
  })
  const headers = bearer(KEY_A)
  const big = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers, payload: { type: 'echo', payload: { blob: 'x'.repeat(10_000) } } })
  t.equal(big.statusCode, 413, 'a body over TASKLANE_BODY_LIMIT_BYTES')
  t.equal(big.headers['content-type'], PROBLEM)
  const payload = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers, payload: { type: 'echo', payload: { blob: 'x'.repeat(2_000) } } })
  t.equal(payload.statusCode, 413, 'a payload over TASKLANE_MAX_PAYLOAD_BYTES')
  t.match(payload.json(), { code: 'PAYLOAD_TOO_LARGE' })
  const claimed = await h.app.inject({
    method: 'POST', url: '/v1/tasks', headers: { ...headers, 'content-type': 'application/json', 'content-length': '999999999' }, payload: '{}',
  })
  t.ok([400, 413].includes(claimed.statusCode), 'a lying Content-Length is refused')
  for (const limit of ['0', '501', '100000', '-1', 'abc']) {
    t.equal((await h.app.inject({ url: `/v1/tasks?limit=${limit}`, headers })).statusCode, 400, `list limit=${limit}`)
  }
  t.equal((await h.app.inject({ url: '/v1/tasks?limit=500', headers })).statusCode, 200)
  const roomy = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A}`, TASKLANE_BODY_LIMIT_BYTES: '1048576' } })
  const tasks = Array.from({ length: 1001 }, () => ({ type: 'echo' }))
  const res = await roomy.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers, payload: { tasks } })
  t.equal(res.statusCode, 400, 'a batch of 1001 tasks')
  t.equal((await roomy.sql`select count(*)::int as n from tasks`)[0]!.n, 0)
  t.equal((await h.sql`select count(*)::int as n from tasks`)[0]!.n, 0, 'nothing oversized was stored')
})
