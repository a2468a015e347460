import t from 'tap'
import { secretSealing } from '../services/core/notifications/secret-sealing.ts'
import { createSecretBox } from '../services/core/secrets/secret-box.ts'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor } from './helpers/harness.ts'

const KEY_A = 'tenant-a-key-for-task-types-01'
const KEY_B = 'tenant-b-key-for-task-types-02'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const A = bearer(KEY_A)
const B = bearer(KEY_B)

const INVOICE = {
  description: 'Sends an invoice',
  payloadSchema: {
    type: 'object',
    properties: { invoiceId: { type: 'string', minLength: 1 }, amount: { type: 'number', minimum: 0 } },
    required: ['invoiceId'],
    additionalProperties: false,
  },
  resultSchema: { type: 'object', required: ['sent'] },
  defaults: { priority: 'high', maxAttempts: 5 },
  executor: { kind: 'pull' },
}

t.test('register, read, list, replace and delete a type; built-ins are listed and read-only', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const put = (name: string, body: unknown, headers = A) => h.app.inject({ method: 'PUT', url: `/v1/task-types/${name}`, headers, payload: body as object })

  const created = await put('send-invoice', INVOICE)
  t.equal(created.statusCode, 201, created.body)
  t.match(created.json(), { name: 'send-invoice', version: 1, queue: 'send-invoice', builtin: false, executor: { kind: 'pull' },
    defaults: { priority: 'high', maxAttempts: 5, timeoutMs: 30_000 } })
  t.notOk('signingSecret' in created.json(), 'a pull type has no secret')

  const replaced = await put('send-invoice', { ...INVOICE, queue: 'billing' })
  t.equal(replaced.statusCode, 200)
  t.match(replaced.json(), { version: 2, queue: 'billing' })

  const list = (await h.app.inject({ url: '/v1/task-types', headers: A })).json() as { items: { name: string, builtin: boolean }[] }
  t.same(list.items.map((i) => i.name), ['echo', 'sleep', 'http', 'send-invoice'])
  const other = (await h.app.inject({ url: '/v1/task-types', headers: B })).json() as { items: { name: string }[] }
  t.same(other.items.map((i) => i.name), ['echo', 'sleep', 'http'], 'another tenant sees only the built-ins')
  t.equal((await h.app.inject({ url: '/v1/task-types/send-invoice', headers: B })).statusCode, 404)
  t.equal((await h.app.inject({ url: '/v1/task-types/echo', headers: A })).json().builtin, true)

  const builtin = await put('echo', INVOICE)
  t.equal(builtin.statusCode, 409, 'a built-in name is taken')
  t.equal((await h.app.inject({ method: 'DELETE', url: '/v1/task-types/http', headers: A })).statusCode, 409)
  const badName = await put('Bad_Name', INVOICE)
  t.equal(badName.statusCode, 400)
  t.equal(badName.json().errors[0].path, '/name')

  const del = await h.app.inject({ method: 'DELETE', url: '/v1/task-types/send-invoice', headers: A })
  t.equal(del.statusCode, 204)
  t.equal((await h.app.inject({ url: '/v1/task-types/send-invoice', headers: A })).statusCode, 404)
  const after = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { invoiceId: 'x' } } })
  t.equal(after.statusCode, 422, 'no task of a deleted type can be created')
  const revived = await put('send-invoice', INVOICE)
  t.equal(revived.statusCode, 201)
  t.equal(revived.json().version, 3, 'a type registered again keeps counting versions')
})

t.test('an invalid schema or executor is a 400 naming the path, and nothing is stored', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const put = (body: unknown) => h.app.inject({ method: 'PUT', url: '/v1/task-types/bad', headers: A, payload: body as object })
  const badSchema = await put({ ...INVOICE, payloadSchema: { type: 'object', properties: { a: { type: 'strng' } } } })
  t.equal(badSchema.statusCode, 400)
  t.match(badSchema.json().errors[0].path, /^\/payloadSchema\/properties\/a\/type/)
  const badRef = await put({ ...INVOICE, resultSchema: { $ref: '#/$defs/missing' } })
  t.equal(badRef.statusCode, 400)
  t.equal(badRef.json().errors[0].path, '/resultSchema')
  const badExecutor = await put({ ...INVOICE, executor: { kind: 'carrier-pigeon' } })
  t.equal(badExecutor.statusCode, 400)
  t.match(badExecutor.json().errors.map((e: { path: string }) => e.path).join(' '), /\/executor/)
  const [row] = await h.sql`select count(*)::int as n from task_types`
  t.equal(row!.n, 0)
})

t.test('payloads are validated against the registered schema; typeVersion and the tenant queue are stored', async (t) => {
  const h = await startHarness(t, { env: ENV })
  await h.app.inject({ method: 'PUT', url: '/v1/task-types/send-invoice', headers: A, payload: INVOICE })
  const bad = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { amount: -1, extra: true } } })
  t.equal(bad.statusCode, 400)
  const paths = (bad.json().errors as { path: string }[]).map((e) => e.path).sort()
  t.same(paths, ['/payload/amount', '/payload/extra', '/payload/invoiceId'])
  const badBatch = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers: A,
    payload: { tasks: [{ type: 'send-invoice', payload: { invoiceId: 'ok' } }, { type: 'send-invoice', payload: {} }] } })
  t.equal(badBatch.statusCode, 400)
  t.equal(badBatch.json().errors[0].path, '/tasks/1/payload/invoiceId')
  const [none] = await h.sql`select count(*)::int as n from tasks`
  t.equal(none!.n, 0, 'nothing stored for rejected input')

  const ok = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { invoiceId: 'inv-1' } } })
  t.equal(ok.statusCode, 202)
  t.match(ok.json(), { typeVersion: 1, queue: 'acme/send-invoice', priority: 'high', maxAttempts: 5 })
  await h.app.inject({ method: 'PUT', url: '/v1/task-types/send-invoice', headers: A, payload: INVOICE })
  const v2 = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { invoiceId: 'inv-2' } } })
  t.equal(v2.json().typeVersion, 2)
  t.equal((await h.app.inject({ url: `/v1/tasks/${ok.json().id}`, headers: A })).json().typeVersion, 1, 'a task keeps its version')
  const echo = await h.createTask({ type: 'echo' }, A)
  t.equal(echo.typeVersion, 1, 'built-ins are version 1')

  // Another tenant's type of the same name is its own, with its own queue.
  const other = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: B, payload: { type: 'send-invoice', payload: {} } })
  t.equal(other.statusCode, 422, 'tenant B has no such type')
  await h.app.inject({ method: 'PUT', url: '/v1/task-types/send-invoice', headers: B, payload: { executor: { kind: 'pull' } } })
  const b = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: B, payload: { type: 'send-invoice', payload: { anything: 1 } } })
  t.equal(b.statusCode, 202)
  t.equal(b.json().queue, 'globex/send-invoice')
  const queues = (await h.app.inject({ url: '/v1/queues', headers: B })).json() as { items: { name: string }[] }
  t.ok(queues.items.some((q) => q.name === 'globex/send-invoice'))
  t.notOk(queues.items.some((q) => q.name.startsWith('acme/')), 'a tenant does not see another tenant\'s queues')
})

t.test('webhook types: the secret is shown once; rotation keeps the previous one for 24 h', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const body = { executor: { kind: 'webhook', url: 'https://hooks.example.com/tasklane' } }
  const created = await h.app.inject({ method: 'PUT', url: '/v1/task-types/notify', headers: A, payload: body })
  t.equal(created.statusCode, 201)
  const first = created.json().signingSecret as string
  t.match(first, /^whsec_[A-Za-z0-9+/=]{40,}$/)
  t.same(created.json().executor, { kind: 'webhook', url: 'https://hooks.example.com/tasklane', timeoutMs: 30_000 })
  const replaced = await h.app.inject({ method: 'PUT', url: '/v1/task-types/notify', headers: A, payload: body })
  t.notOk('signingSecret' in replaced.json(), 'never shown again')
  t.notOk('signingSecret' in (await h.app.inject({ url: '/v1/task-types/notify', headers: A })).json())

  const rotated = await h.app.inject({ method: 'POST', url: '/v1/task-types/notify/rotate-secret', headers: A })
  t.equal(rotated.statusCode, 200)
  const second = rotated.json().signingSecret as string
  t.not(second, first)
  const [row] = await h.sql`select signing_secret, previous_signing_secret,
    previous_secret_expires_at between now() + interval '23 hours 59 minutes' and now() + interval '24 hours 1 minute' as ttl_ok
    from task_types where tenant = 'acme' and name = 'notify'`
  const open = secretSealing(createSecretBox(h.config)).open
  t.match(row, { signing_secret: /^tlsec:/, previous_signing_secret: /^tlsec:/, ttl_ok: true }, 'stored sealed, never as issued')
  t.same([open(row!.signing_secret), open(row!.previous_signing_secret)], [second, first], 'the sealed secrets are the issued ones')
  await h.app.inject({ method: 'PUT', url: '/v1/task-types/pulled', headers: A, payload: { executor: { kind: 'pull' } } })
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/task-types/pulled/rotate-secret', headers: A })).statusCode, 409)
})

t.test('at most 100 types per tenant', async (t) => {
  const h = await startHarness(t, { env: ENV })
  await h.sql`insert into task_types (tenant, name, version, queue, defaults, executor)
    select 'acme', 't' || i, 1, 't' || i, '{}'::jsonb, '{"kind":"pull"}'::jsonb from generate_series(1, 100) i`
  const res = await h.app.inject({ method: 'PUT', url: '/v1/task-types/one-more', headers: A, payload: { executor: { kind: 'pull' } } })
  t.equal(res.statusCode, 409)
  t.equal((await h.app.inject({ method: 'PUT', url: '/v1/task-types/t1', headers: A, payload: { executor: { kind: 'pull' } } })).statusCode, 200,
    'replacing one of them is fine')
})

t.test('a type registered through one API process reaches another within seconds, with no restart', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const { openApiDeps } = await import('../services/api/open-deps.ts')
  const { buildServer } = await import('../services/api/build-server.ts')
  const { testLogger } = await import('./helpers/test-config.ts')
  const deps2 = openApiDeps(h.config, testLogger(h.config, 'api-2'))
  const app2 = await buildServer(deps2, testLogger(h.config, 'api-2'))
  await app2.ready()
  t.teardown(async () => { await app2.close(); await deps2.close() })

  await h.app.inject({ method: 'PUT', url: '/v1/task-types/send-invoice', headers: A, payload: INVOICE })
  const created = await waitFor(async () => {
    const res = await app2.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { invoiceId: 'x' } } })
    return res.statusCode === 202 && res
  }, 5_000)
  t.equal(created.json().typeVersion, 1)
  await h.app.inject({ method: 'DELETE', url: '/v1/task-types/send-invoice', headers: A })
  await waitFor(async () => {
    const res = await app2.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'send-invoice', payload: { invoiceId: 'x' } } })
    return res.statusCode === 422
  }, 5_000)
  t.pass('the delete reached the other process')
})
