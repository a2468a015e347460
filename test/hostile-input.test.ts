import { once } from 'node:events'
import { connect, type AddressInfo } from 'node:net'
import t from 'tap'
import { MAX_JSON_DEPTH } from '../services/core/json-depth.ts'
import { startHarness, type Harness } from './helpers/harness.ts'

// Load shedding off: these tests are about input and faults, not a busy machine's event loop.
const STEADY = { TASKLANE_MAX_EVENT_LOOP_DELAY_MS: '0' }

const nested = (depth: number): unknown => {
  let value: unknown = 1
  for (let i = 0; i < depth; i++) value = [value]
  return value
}

const post = (h: Harness, url: string, payload: string | object, headers: Record<string, string> = {}) =>
  h.app.inject({ method: 'POST', url, payload: typeof payload === 'string' ? payload : JSON.stringify(payload), headers: { 'content-type': 'application/json', ...headers } })

const taskCount = async (h: Harness) => (await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`)[0]!.n

t.test('JSON nested deeper than the documented maximum is a 400 on every route; any depth is safe', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  for (const depth of [MAX_JSON_DEPTH + 1, 5_000, 100_000]) {
    // Written as text: JSON.stringify itself overflows the stack on the deepest.
    const payload = `${'['.repeat(depth)}1${']'.repeat(depth)}`
    const single = await post(h, '/v1/tasks', `{"type":"echo","payload":${payload}}`)
    t.equal(single.statusCode, 400, `a payload ${depth} deep`)
    t.equal(single.json().code, 'JSON_TOO_DEEP')
    const batch = await post(h, '/v1/tasks/batch', `{"tasks":[{"type":"echo","payload":${payload}}]}`)
    t.equal(batch.statusCode, 400, `a batch item ${depth} deep`)
    const keyed = await post(h, '/v1/tasks', `{"type":"echo","payload":${payload}}`, { 'idempotency-key': `deep-${depth}` })
    t.equal(keyed.statusCode, 400, 'with an Idempotency-Key (the request hash walks the body)')
  }
  // Brackets inside strings are text, not nesting.
  const text = await post(h, '/v1/tasks', { type: 'echo', payload: { s: '['.repeat(10_000) } })
  t.equal(text.statusCode, 202, 'brackets in a string do not count')
  const deepest = await post(h, '/v1/tasks', { type: 'echo', payload: nested(MAX_JSON_DEPTH - 2) })
  t.equal(deepest.statusCode, 202, `a payload ${MAX_JSON_DEPTH - 2} deep is stored`)
  t.same((await h.getTask(deepest.json().id)).payload, nested(MAX_JSON_DEPTH - 2), 'and read back whole')
  t.equal(await taskCount(h), 2, 'nothing too deep was stored')
})

t.test('request bodies are not type-coerced; query strings still are', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  const bad = [
    { type: 'echo', delayMs: '0x10' }, { type: 'echo', delayMs: '16' }, { type: 'echo', maxAttempts: true },
    { type: 'echo', maxAttempts: [5] }, { type: 'echo', timeoutMs: '1000' }, { type: 7 },
    { type: 'echo', backoff: { type: 'fixed', delayMs: '5' } },
  ]
  for (const body of bad) {
    const res = await post(h, '/v1/tasks', body)
    t.equal(res.statusCode, 400, `${JSON.stringify(body)} is refused`)
  }
  const batch = await post(h, '/v1/tasks/batch', { tasks: [{ type: 'echo', maxAttempts: '2' }] })
  t.equal(batch.statusCode, 400, 'nor in a batch')
  t.equal(await taskCount(h), 0)
  const page = await h.app.inject({ url: '/v1/tasks?limit=5' })
  t.equal(page.statusCode, 200, 'limit=5 in a query string is a number')
})

t.test('a declared charset other than UTF-8 is a 415; UTF-8 in any spelling is read', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  const body = Buffer.from(JSON.stringify({ type: 'echo', payload: { name: 'Zoë' } }), 'latin1')
  for (const charset of ['iso-8859-1', 'latin1', 'utf-16', '"windows-1252"']) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: body, headers: { 'content-type': `application/json; charset=${charset}` } })
    t.equal(res.statusCode, 415, `charset=${charset}`)
    t.equal(res.json().code, 'UNSUPPORTED_CHARSET')
  }
  t.equal(await taskCount(h), 0, 'nothing stored corrupted')
  for (const charset of ['utf-8', 'UTF-8', 'utf8']) {
    const res = await post(h, '/v1/tasks', { type: 'echo', payload: { name: 'Zoë' } }, { 'content-type': `application/json; charset=${charset}` })
    t.equal(res.statusCode, 202, `charset=${charset}`)
    t.same(res.json().payload, { name: 'Zoë' })
  }
})

t.test('the http type refuses header names and values that cannot be sent', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  const headers = [{ 'x\r\ninjected': 'v' }, { 'bad name': 'v' }, { '': 'v' }, { 'x-ok': 'a\r\nb' }, { 'x-ok': 'nul\u0000' }]
  for (const given of headers) {
    const res = await post(h, '/v1/tasks', { type: 'http', payload: { method: 'GET', url: 'https://example.com/', headers: given } })
    t.equal(res.statusCode, 400, `${JSON.stringify(given)} is refused`)
    t.ok(res.json().errors.every((e: { path: string }) => e.path.startsWith('/payload/headers')), 'naming the headers')
  }
  const good = await post(h, '/v1/tasks', { type: 'http', payload: { method: 'GET', url: 'https://example.com/', headers: { 'x-trace-id': 'abc' } } })
  t.equal(good.statusCode, 202)
})

t.test('a value outside an enum gets one message naming the values allowed', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  const priority = await post(h, '/v1/tasks', { type: 'echo', priority: 'urgent' })
  t.equal(priority.statusCode, 400)
  t.same(priority.json().errors, [{ path: '/priority', message: 'must be one of: "critical", "high", "normal", "low"' }])
  const method = await post(h, '/v1/tasks', { type: 'http', payload: { method: 'FETCH', url: 'https://example.com/' } })
  t.equal(method.statusCode, 400)
  t.same(method.json().errors, [{ path: '/payload/method', message: 'must be one of: "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"' }])
  const status = await h.app.inject({ url: '/v1/tasks?status=done' })
  t.equal(status.statusCode, 400)
  t.equal(status.json().errors.length, 1)
  t.match(status.json().errors[0].message, /must be one of: "queued", "running"/)
})

t.test('field errors are capped, with the number left out, and validation stops early', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  // 1000 items each with a bad payload: the service validates them all, but lists 20.
  const tasks = Array.from({ length: 1000 }, () => ({ type: 'sleep', payload: { ms: 'x', extra: 1 } }))
  const res = await post(h, '/v1/tasks/batch', { tasks })
  t.equal(res.statusCode, 400)
  const problem = res.json()
  t.equal(problem.errors.length, 20)
  t.ok(problem.errorsOmitted >= 1980, `errorsOmitted: ${problem.errorsOmitted}`)
  t.ok(res.body.length < 10_000, `a small document (${res.body.length} bytes)`)
  // A schema violation per field of a large body: Ajv stops at the first one.
  const fields = Object.fromEntries(Array.from({ length: 50_000 }, (_, i) => [`f${i}`, 1]))
  const wide = await post(h, '/v1/tasks/batch', { tasks: [{ type: 'echo', ...fields }] })
  t.equal(wide.statusCode, 400)
  t.ok(wide.json().errors.length <= 20, `${wide.json().errors.length} errors listed`)
  t.ok(wide.body.length < 10_000, `a small document (${wide.body.length} bytes)`)
  t.equal(await taskCount(h), 0)
})

t.test('dates the database cannot hold are a 400; years 0001-0099 read back as given', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  for (const runAt of ['0000-06-01T00:00:00Z', '9999-12-31T23:00:00-05:00', '0001-01-01T00:30:00+01:00']) {
    const res = await post(h, '/v1/tasks', { type: 'echo', runAt })
    t.equal(res.statusCode, 400, `runAt ${runAt}`)
    t.equal(res.json().errors[0].path, '/runAt')
  }
  for (const name of ['createdAfter', 'createdBefore']) {
    for (const value of ['0000-01-01T00:00:00Z', '9999-12-31T23:59:59-01:00']) {
      const res = await h.app.inject({ url: `/v1/tasks?${name}=${encodeURIComponent(value)}` })
      t.equal(res.statusCode, 400, `${name}=${value}`)
    }
  }
  t.equal(await taskCount(h), 0)
  for (const runAt of ['0001-01-01T00:00:00.000Z', '0050-06-01T12:30:00.000Z', '0099-12-31T23:59:59.000Z', '9999-12-31T23:59:59.000Z']) {
    const res = await post(h, '/v1/tasks', { type: 'echo', runAt })
    t.equal(res.statusCode, 202, `runAt ${runAt} is stored`)
    t.equal((await h.getTask(res.json().id)).runAt, runAt, 'and read back unchanged')
  }
  const listed = await h.app.inject({ url: `/v1/tasks?createdAfter=${encodeURIComponent('0001-01-01T00:00:00Z')}` })
  t.equal(listed.statusCode, 200)
  t.equal(listed.json().items.length, 4)
})

t.test('an idempotent create whose key is freed between the insert and the lookup is stored, not a 500', async (t) => {
  const h = await startHarness(t, { env: STEADY })
  // A real race made deterministic: the first insert under this key is skipped, as if an earlier
  // task had held the key and was deleted before the lookup.
  await h.sql.unsafe(`
    create table race_skips (n int);
    create function skip_first_insert() returns trigger language plpgsql as $$
    begin
      if new.idempotency_key = 'raced' and not exists (select 1 from race_skips) then
        insert into race_skips values (1);
        return null;
      end if;
      return new;
    end $$;
    create trigger skip_first before insert on tasks for each row execute function skip_first_insert();`)
  const res = await post(h, '/v1/tasks', { type: 'echo', payload: { x: 1 } }, { 'idempotency-key': 'raced' })
  t.equal(res.statusCode, 202, res.body)
  t.equal(await taskCount(h), 1)
  // A key that never settles ends in a coded 409, never a bare 500.
  await h.sql.unsafe(`create or replace function skip_first_insert() returns trigger language plpgsql as $$
    begin if new.idempotency_key = 'always' then return null; end if; return new; end $$;`)
  const never = await post(h, '/v1/tasks', { type: 'echo' }, { 'idempotency-key': 'always' })
  t.equal(never.statusCode, 409)
  t.equal(never.json().code, 'TASK_CONFLICT')
})

/** Sends raw bytes to the listening server and returns what it answered. */
async function raw (port: number, request: string | Buffer, keepOpen = false): Promise<string> {
  const socket = connect(port, '127.0.0.1')
  await once(socket, 'connect')
  let answer = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { answer += chunk })
  socket.write(request)
  if (!keepOpen) socket.end()
  await once(socket, 'close')
  return answer
}

const problemOf = (answer: string) => ({
  status: Number(answer.split(' ')[1]),
  type: /content-type: ([^\r\n]+)/i.exec(answer)?.[1],
  body: JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)),
})

t.test('requests the HTTP parser refuses, and slow ones, get problem documents', async (t) => {
  const h = await startHarness(t, { env: { ...STEADY, TASKLANE_REQUEST_TIMEOUT_MS: '1000' } })
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const port = (h.app.server.address() as AddressInfo).port
  const cases = [
    { name: 'a NUL in a header', request: 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0000b\r\n\r\n', status: 400, code: 'MALFORMED_REQUEST' },
    { name: 'headers over 16 KiB', request: `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, status: 431, code: 'HEADERS_TOO_LARGE' },
    { name: 'Content-Length and Transfer-Encoding together', request: 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', status: 400, code: 'MALFORMED_REQUEST' },
    { name: 'two different Content-Lengths', request: 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\n{}{}', status: 400, code: 'MALFORMED_REQUEST' },
  ]
  for (const c of cases) {
    const answer = problemOf(await raw(port, c.request))
    t.equal(answer.status, c.status, c.name)
    t.match(answer.type, /application\/problem\+json/, `${c.name}: a problem document`)
    t.match(answer.body, { status: c.status, code: c.code, requestId: String })
  }
  // A body that never arrives in full: cut off after TASKLANE_REQUEST_TIMEOUT_MS with a 408.
  const slow = problemOf(await raw(port, 'POST /v1/tasks HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"ty', true))
  t.equal(slow.status, 408, 'a slow body')
  t.match(slow.body, { status: 408, code: 'REQUEST_TIMEOUT' })
  t.equal(await taskCount(h), 0)
})
