import { createHash } from 'node:crypto'
import { Writable } from 'node:stream'
import { pino } from 'pino'
import t from 'tap'
import { buildServer } from '../services/api/build-server.ts'
import { openApiDeps } from '../services/api/open-deps.ts'
import { bearer, createKey, keysCommand } from './helpers/auth.ts'
import { startHarness } from './helpers/harness.ts'

const PROBLEM = 'application/problem+json; charset=utf-8'
const BOOT_A = 'tenant-a-bootstrap-key-0001'
const BOOT_B = 'tenant-b-bootstrap-key-0002'
const ADMIN = 'admin-key-for-the-auth-test-0003'
const AUTH_ON = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${BOOT_A},globex:${BOOT_B}`, TASKLANE_ADMIN_KEY: ADMIN }

t.test('every /v1 route needs a valid key; each failure is the same 401 problem', async (t) => {
  const h = await startHarness(t, { env: { ...AUTH_ON, TASKLANE_AUTH_CACHE_MS: '0' } })
  const created = await createKey(h.config.DATABASE_URL, 'initech')
  const revoked = await createKey(h.config.DATABASE_URL, 'initech')
  t.ok((await h.app.inject({ url: '/v1/tasks', headers: bearer(revoked.key) })).statusCode === 200, 'the key works before it is revoked')
  t.match(await keysCommand(h.config.DATABASE_URL, ['revoke', '--id', revoked.id]), /revoked key/)

  const failures: Record<string, Record<string, string>> = {
    'no header': {},
    'empty header': { authorization: '' },
    'wrong scheme': { authorization: `Basic ${Buffer.from(`x:${BOOT_A}`).toString('base64')}` },
    'bearer without a key': { authorization: 'Bearer ' },
    'wrong key': bearer('tl_this-key-was-never-issued-by-anyone'),
    'short key': bearer('abc'),
    'key with a changed last character': bearer(BOOT_A.slice(0, -1) + '9'),
    'revoked key': bearer(revoked.key),
    'admin key on a tenant route': bearer(ADMIN),
    'key of another format': { authorization: `Bearer ${'x'.repeat(600)}` },
  }
  const routes = [
    { method: 'GET' as const, url: '/v1/tasks' },
    { method: 'POST' as const, url: '/v1/tasks', payload: { type: 'echo', payload: {} } },
    { method: 'GET' as const, url: '/v1/tasks/0193e1d2-0000-7000-8000-000000000000' },
    { method: 'GET' as const, url: '/v1/task-types' },
    { method: 'GET' as const, url: '/v1/no-such-route' },
  ]
  const bodies = new Set<string>()
  for (const [name, headers] of Object.entries(failures)) {
    for (const route of routes) {
      const res = await h.app.inject({ ...route, headers })
      t.equal(res.statusCode, 401, `${name}: ${route.method} ${route.url}`)
      t.equal(res.headers['content-type'], PROBLEM)
      t.match(res.headers['www-authenticate'], /^Bearer realm="tasklane"/)
      const { requestId, ...rest } = res.json()
      t.type(requestId, 'string')
      bodies.add(JSON.stringify(Object.fromEntries(Object.entries(rest).sort())))
    }
  }
  t.equal(bodies.size, 1, 'no body hints at which part was wrong')
  t.same(JSON.parse([...bodies][0]!), { type: 'urn:tasklane:problem:unauthenticated', title: 'Unauthorized', status: 401, code: 'UNAUTHENTICATED', detail: 'A valid API key is required' })
  t.equal(Number((await h.sql`select count(*)::int as n from tasks`)[0]!.n), 0, 'no rejected request stored a task')

  for (const headers of [bearer(created.key), { authorization: `bearer   ${created.key}` }, bearer(BOOT_A), bearer(BOOT_B)]) {
    const res = await h.app.inject({ url: '/v1/tasks', headers })
    t.equal(res.statusCode, 200, 'a valid key is accepted')
  }
  for (const url of ['/healthz', '/readyz']) {
    t.equal((await h.app.inject({ url })).statusCode, 200, `${url} needs no key`)
  }
})

t.test('keys are stored as SHA-256 hashes only, created, listed and revoked by the CLI', async (t) => {
  const h = await startHarness(t, { env: { ...AUTH_ON, TASKLANE_AUTH_CACHE_MS: '0' } })
  const created = await createKey(h.config.DATABASE_URL, 'initech')
  t.match(created.key, /^tl_[A-Za-z0-9_-]{43}$/, '32 random bytes')
  const rows = await h.sql`select * from api_keys order by created_at`
  t.equal(rows.length, 3, 'two bootstrap keys and one made by the CLI')
  const dump = JSON.stringify(rows)
  for (const key of [created.key, BOOT_A, BOOT_B]) {
    t.notOk(dump.includes(key), 'the key itself is stored nowhere')
    t.ok(rows.some((r) => r.key_hash === createHash('sha256').update(key).digest('hex')), 'its SHA-256 is')
  }
  t.same(rows.map((r) => [r.tenant, r.name]).sort(), [['acme', 'bootstrap'], ['globex', 'bootstrap'], ['initech', 'default']])

  const listing = JSON.parse(await keysCommand(h.config.DATABASE_URL, ['list', '--tenant', 'initech', '--json']))
  t.equal(listing.length, 1)
  t.equal(listing[0].id, created.id)
  t.notOk(JSON.stringify(listing).includes(created.key), 'a listing never shows a key')
  t.equal(listing[0].revokedAt, null)

  // Revoking by the key itself works too, and a revoked bootstrap key stays revoked across restarts.
  await keysCommand(h.config.DATABASE_URL, ['revoke', '--key', BOOT_A])
  t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(BOOT_A) })).statusCode, 401)
  const again = openApiDeps(h.config, h.app.log as never)
  const second = await buildServer(again, h.app.log as never)
  t.teardown(async () => { await second.close(); await again.close() })
  await second.ready()
  t.equal((await second.inject({ url: '/v1/tasks', headers: bearer(BOOT_A) })).statusCode, 401, 'a restart with the same TASKLANE_API_KEYS does not bring it back')
  t.equal((await second.inject({ url: '/v1/tasks', headers: bearer(BOOT_B) })).statusCode, 200)

  await t.rejects(keysCommand(h.config.DATABASE_URL, ['create']), 'create without --tenant is refused')
  await t.rejects(keysCommand(h.config.DATABASE_URL, ['create', '--tenant', 'bad tenant!']), 'a bad tenant name is refused')
  await t.rejects(keysCommand(h.config.DATABASE_URL, ['revoke', '--id', '00000000-0000-4000-8000-000000000000']), 'revoking an unknown key fails')
})

t.test('last use is recorded without a write per request', async (t) => {
  const h = await startHarness(t, { env: AUTH_ON })
  const version = async () => (await h.sql`select xmin::text as v, last_used_at from api_keys where tenant = 'acme'`)[0]!
  t.equal((await version()).last_used_at, null)
  t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(BOOT_A) })).statusCode, 200)
  const first = await waitForLastUsed(h.sql)
  t.ok(first.last_used_at, 'the first use is recorded')
  for (let i = 0; i < 30; i++) {
    t.equal((await h.app.inject({ url: '/v1/tasks', headers: bearer(BOOT_A) })).statusCode, 200)
  }
  const after = await version()
  t.equal(after.v, first.v, 'thirty more requests did not rewrite the row')
  t.same(after.last_used_at, first.last_used_at)
})

async function waitForLastUsed (sql: import('postgres').Sql) {
  for (let i = 0; i < 100; i++) {
    const [row] = await sql`select xmin::text as v, last_used_at from api_keys where tenant = 'acme'`
    if (row!.last_used_at) return row!
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error('last_used_at was never set')
}

t.test('admin routes need TASKLANE_ADMIN_KEY, which is not a tenant key', async (t) => {
  const h = await startHarness(t, { env: AUTH_ON })
  const basic = (secret: string) => ({ authorization: `Basic ${Buffer.from(`ops:${secret}`).toString('base64')}` })
  for (const headers of [{}, bearer(BOOT_A), bearer('tl_not-the-admin-key-at-all-0000'), basic(BOOT_A)]) {
    const res = await h.app.inject({ url: '/admin/queues', headers })
    t.equal(res.statusCode, 401, '/admin/queues without the admin key')
    t.match(res.headers['www-authenticate'], /^Basic realm="tasklane admin"/, 'a browser asks for the key')
  }
  for (const headers of [bearer(ADMIN), basic(ADMIN)]) {
    const res = await h.app.inject({ url: '/admin/queues', headers })
    t.not(res.statusCode, 401, 'the admin key opens /admin/queues')
    t.ok(res.statusCode < 500)
  }
  for (const action of ['pause', 'resume']) {
    for (const headers of [{}, bearer(BOOT_A)]) {
      const res = await h.app.inject({ method: 'POST', url: `/v1/queues/default/${action}`, headers })
      t.equal(res.statusCode, 401, `${action} with a tenant key or none`)
    }
    const res = await h.app.inject({ method: 'POST', url: `/v1/queues/default/${action}`, headers: bearer(ADMIN) })
    t.equal(res.statusCode, 200, `${action} with the admin key`)
  }
})

t.test('with no admin key configured, admin routes refuse everyone', async (t) => {
  const h = await startHarness(t, { env: { ...AUTH_ON, TASKLANE_ADMIN_KEY: '' } })
  for (const headers of [{}, bearer(BOOT_A), bearer('')]) {
    t.equal((await h.app.inject({ url: '/admin/queues', headers })).statusCode, 401)
  }
})

t.test('TASKLANE_AUTH=disabled logs a loud warning and serves the default tenant', async (t) => {
  const lines: { level: number, msg: string }[] = []
  const sink = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(String(chunk))); done() } })
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'disabled' } })
  const log = pino({ level: 'info' }, sink)
  const deps = openApiDeps(h.config, log)
  const server = await buildServer(deps, log)
  t.teardown(async () => { await server.close(); await deps.close() })
  await server.ready()
  const warning = lines.find((l) => /AUTHENTICATION IS OFF/.test(l.msg))
  t.ok(warning, 'the warning is logged at start')
  t.equal(warning?.level, 40, 'at warn level')
  const res = await server.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: {} } })
  t.equal(res.statusCode, 202)
  t.equal((await h.sql`select tenant from tasks`)[0]!.tenant, 'default')
})

t.test('a bad TASKLANE_API_KEYS or admin key stops the process naming the variable, never the key', async (t) => {
  const { loadConfig } = await import('../services/core/config.ts')
  t.throws(() => loadConfig({ TASKLANE_API_KEYS: 'acme:short' }), /TASKLANE_API_KEYS: item 1/)
  t.throws(() => loadConfig({ TASKLANE_API_KEYS: `acme:${BOOT_A},nokey` }), /TASKLANE_API_KEYS: item 2/)
  let caught: unknown
  try { loadConfig({ TASKLANE_API_KEYS: `bad tenant:${BOOT_A}` }) } catch (err) { caught = err }
  t.ok(caught instanceof Error, 'a bad tenant name is refused')
  t.notOk((caught as Error | undefined)?.message.includes(BOOT_A), 'the key is not in the message')
  t.throws(() => loadConfig({ TASKLANE_ADMIN_KEY: 'short' }), /TASKLANE_ADMIN_KEY/)
  t.same(loadConfig({ TASKLANE_API_KEYS: ` acme:${BOOT_A} , globex:${BOOT_B}` }).apiKeys, [{ tenant: 'acme', key: BOOT_A }, { tenant: 'globex', key: BOOT_B }])
})
