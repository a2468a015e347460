import t from 'tap'
import { createApiKeyService } from '../services/core/auth/api-key-service.ts'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { testLogger } from './helpers/test-config.ts'

const KEY = 'failure-limit-tenant-key-01'

async function counted (h: Harness, status: string): Promise<number> {
  const { values } = await h.deps.metrics.registry.getSingleMetric('tasklane_http_client_failures_total')!.get()
  return values.find((v) => v.labels.status === status)?.value ?? 0
}

t.test('an unknown key is refused from memory for a while: another process\'s new key is seen only after that', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_AUTH_FAILURE_CACHE_MS: '1500', TASKLANE_CLIENT_FAILURE_LIMIT: '0' } })
  const key = 'made-by-another-process-0001'
  t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(key) })).statusCode, 401, 'unknown: 401')
  // The key appears in Postgres through another process's service (its own cache, not this one's).
  const other = createApiKeyService({ db: h.deps.database.db, log: testLogger(h.config, 'other'), cacheMs: 0 })
  t.equal(await other.bootstrap([{ tenant: 'late', key }]), 1)
  t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(key) })).statusCode, 401,
    'still 401: the failure was remembered, Postgres was not asked again')
  await waitFor(async () => (await h.app.inject({ url: '/v1/tasks', headers: bearer(key) })).statusCode === 200, 10_000, 200)
  t.pass('accepted once the remembered failure expired')
})

t.test('401s and 404s are counted per client address: past the limit, 429 with Retry-After until the window ends', async (t) => {
  const h = await startHarness(t, {
    env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}`, TASKLANE_CLIENT_FAILURE_LIMIT: '5', TASKLANE_CLIENT_FAILURE_WINDOW_MS: '2000' },
  })
  const ok = await h.app.inject({ url: '/v1/tasks', headers: bearer(KEY) })
  t.equal(ok.statusCode, 200, 'successes do not count')
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await h.app.inject({ url: `/v1/tasks/0193b5a2-7c1e-7d3a-9f4b-2e8c6a1d0f5${i}`, headers: bearer(KEY) })).statusCode)
  for (let i = 0; i < 2; i++) statuses.push((await h.app.inject({ url: '/v1/tasks', headers: bearer(`guessed-key-000000000${i}`) })).statusCode)
  t.same(statuses, [404, 404, 404, 401, 401], 'five failures answered as such')

  const refused = await h.app.inject({ url: '/v1/tasks', headers: bearer(KEY) })
  t.equal(refused.statusCode, 429, 'then the address is refused, a valid key included')
  t.match(refused.json(), { code: 'RATE_LIMITED', type: 'urn:tasklane:problem:rate-limited' })
  t.ok(Number(refused.headers['retry-after']) >= 1, 'with Retry-After')
  t.equal((await h.app.inject({ url: '/healthz' })).statusCode, 200, 'the probes still answer')
  t.equal(await counted(h, '404'), 3)
  t.equal(await counted(h, '401'), 2)
  t.ok(await counted(h, '429') >= 1, 'refusals are counted too')

  await waitFor(async () => (await h.app.inject({ url: '/v1/tasks', headers: bearer(KEY) })).statusCode === 200, 10_000, 200)
  t.pass('served again once the window ended')
})

t.test('behind a trusted proxy, each forwarded client address has its own budget', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_CLIENT_FAILURE_LIMIT: '2', TASKLANE_TRUST_PROXY: '127.0.0.1' } })
  const from = (client: string) => ({ 'x-forwarded-for': client })
  const missing = '/v1/tasks/0193b5a2-7c1e-7d3a-9f4b-2e8c6a1d0f57'
  const statuses: number[] = []
  for (let i = 0; i < 3; i++) statuses.push((await h.app.inject({ url: missing, headers: from('203.0.113.7') })).statusCode)
  t.same(statuses, [404, 404, 429], 'the guessing client is refused after two failures')
  t.equal((await h.app.inject({ url: missing, headers: from('198.51.100.9') })).statusCode, 404, 'another client behind the same proxy is not')
})
