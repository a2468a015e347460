import { connect } from 'node:net'
import type { AddressInfo } from 'node:net'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness } from './helpers/harness.ts'

const KEY = 'tenant-key-for-the-fuzz-test-0001'
const ADMIN = 'admin-key-for-the-fuzz-test-0002'
const SEED = Number(process.env.FUZZ_SEED ?? 20261123)
const REQUESTS = 1_500

/** mulberry32: a small seeded generator, so a failure can be replayed with FUZZ_SEED. */
function generator (seed: number) {
  let a = seed >>> 0
  const next = () => {
    a = (a + 0x6D2B79F5) >>> 0
    let r = Math.imul(a ^ (a >>> 15), 1 | a)
    r = (r + Math.imul(r ^ (r >>> 7), 61 | r)) ^ r
    return ((r ^ (r >>> 14)) >>> 0) / 4294967296
  }
  const pick = <T>(items: readonly T[]): T => items[Math.floor(next() * items.length)]!
  return { next, pick, int: (n: number) => Math.floor(next() * n) }
}

const STRINGS = [
  '', ' ', '\u0000', 'a\u0000b', '\ud800', '\udfff', 'x\ud83d', '\uffff', '\ufeff', '\u202e', '\u0085', '\t\r\n', '😀', '𝕿𝖆𝖘𝖐',
  'Ω≈ç√∫', 'ﷺ', 'e\u0301\u0301\u0301', '../../etc/passwd', '..\\..\\windows', '%2e%2e%2f', '%00', '%ff',
  "'; drop table tasks; --", "' or '1'='1", '$1', '{{7*7}}', '${jndi:ldap://x}', '<script>alert(1)</script>', '\r\nX-Injected: 1',
  'NaN', 'Infinity', '-0', '1e309', '0x10', 'true', 'null', '[]', '{}', '__proto__', 'constructor', 'prototype',
  'a'.repeat(300), 'b'.repeat(70_000), '0193e1d2-0000-7000-8000-000000000000', '00000000-0000-0000-0000-000000000000',
]
const SCALARS: unknown[] = [null, true, false, 0, -1, 1.5, -0, 2 ** 53, -(2 ** 63), 1e308, 5e-324, ...STRINGS]
const FIELDS = ['type', 'payload', 'priority', 'runAt', 'delayMs', 'maxAttempts', 'backoff', 'timeoutMs']

function fuzzer (seed: number) {
  const g = generator(seed)
  const value = (depth = 0): unknown => {
    const roll = g.next()
    if (depth > 3 || roll < 0.6) return g.pick(SCALARS)
    if (roll < 0.8) return Array.from({ length: g.int(4) }, () => value(depth + 1))
    return Object.fromEntries(Array.from({ length: g.int(4) }, () => [g.pick([...FIELDS, ...STRINGS.slice(0, 30)]), value(depth + 1)]))
  }
  const task = (): Record<string, unknown> => {
    const base: Record<string, unknown> = g.next() < 0.7 ? { type: g.pick(['echo', 'sleep', 'http', 'teleport', ...STRINGS.slice(0, 20)]) } : {}
    for (let i = g.int(4); i > 0; i--) base[g.pick([...FIELDS, 'colour', '__proto__', 'constructor'])] = value()
    if (base.type === 'http' && g.next() < 0.5) base.payload = { method: g.pick(['GET', 'get', 'TRACE', 1]), url: g.pick(['http://127.0.0.1/', 'file:///etc/passwd', 'http://[::1]/', 'gopher://x', ...STRINGS.slice(0, 10)]), headers: value() }
    return base
  }
  const rawBodies = [
    '{"type": "echo",', '{"type":"echo"} trailing', '\ufeff{"type":"echo"}', "{'type':'echo'}", '{"type":NaN}', '{"type":"echo","payload":1e999999}',
    '[', ']', 'null', 'true', '"echo"', '12', '{"a":' + '['.repeat(5_000) + ']'.repeat(5_000) + '}', '{"__proto__":{"polluted":1},"type":"echo"}',
    '{"type":"echo","constructor":{"prototype":{"polluted":1}}}', '{"type":"echo","type":"sleep"}', '{"type":"echo","payload":"\\ud800"}',
    '{"type":"echo","payload":{"k\\u0000":1}}', '\u0000', '\xff\xfe', '{"type":"echo","payload":"' + 'x'.repeat(2_000_000) + '"}', '{}',
    '{"type":"echo","payload":' + '{"a":'.repeat(300) + '1' + '}'.repeat(300) + '}', '{"tasks":' + '['.repeat(200) + ']'.repeat(200) + '}',
  ]
  const ids = ['..', '../..', '..%2f..%2fetc%2fpasswd', '%2e%2e', '..;', '.%00.', '%c0%ae%c0%ae', '%ed%a0%80', 'null', 'undefined', '0', '-1',
    "1'or'1'='1", '0193e1d2-0000-7000-8000-00000000000g', '0193E1D2-0000-7000-8000-000000000000', '{id}', ':id', '*', '%2A', 'a'.repeat(70), 'a'.repeat(250), '😀', '%F0%9F%98%80']
  const queries = ['limit=0', 'limit=-1', 'limit=1e3', 'limit=5.5', 'limit=' + '9'.repeat(40), 'limit[]=1', 'limit=1&limit=2', 'cursor=', 'cursor=' + 'A'.repeat(199),
    'cursor=MDE5M2UxZDItMDAwMC03MDAwLTgwMDAtMDAwMDAwMDAwMDAw', 'status=queued&status=failed', 'status[]=queued', 'status=QUEUED', 'type=' + 'x'.repeat(200),
    'createdAfter=yesterday', 'createdAfter=2020-02-30T00:00:00Z', 'createdBefore=9999-12-31T23:59:59.999Z', '__proto__[polluted]=1', 'constructor[prototype][x]=1',
    'queue=%ed%a0%80', 'type=%F0%9F%98%80', 'a=' + 'b'.repeat(5_000), '&&&&', '=', '%', '%%', 'limit=%00']
  const contentTypes = ['application/json; charset=utf-16', 'application/json; charset=latin1', 'application/json-patch+json', 'application/jsonx', 'text/plain',
    'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', '', 'application/json, text/plain', 'application/json;' + ' '.repeat(2_000), 'application/JSON', '*/*']
  const authorizations = ['', 'Bearer', 'Bearer ' + KEY + ' extra', 'Bearer  ' + KEY.toUpperCase(), 'Basic ' + Buffer.from(`x:${KEY}`).toString('base64'),
    'Token ' + KEY, 'Bearer ' + 'x'.repeat(10_000), 'Bearer ' + ADMIN, 'Bearer \u00ff\u00fe', 'bearer ' + KEY.slice(1), 'Bearer ' + KEY + '\t']
  const routes: { method: InjectOptions['method'], url: (id: string) => string }[] = [
    { method: 'GET', url: (id) => `/v1/tasks/${id}` }, { method: 'GET', url: (id) => `/v1/tasks/${id}/attempts` }, { method: 'GET', url: (id) => `/v1/tasks/${id}/events` },
    { method: 'POST', url: (id) => `/v1/tasks/${id}/cancel` }, { method: 'POST', url: (id) => `/v1/tasks/${id}/retry` }, { method: 'DELETE', url: (id) => `/v1/tasks/${id}` },
    { method: 'POST', url: (id) => `/v1/queues/${id}/pause` }, { method: 'GET', url: (id) => `/admin/queues/${id}` }, { method: 'GET', url: (id) => `/${id}/v1/tasks` },
  ]

  return function request (): { options: InjectOptions, kind: string } {
    const auth = g.next() < 0.85 ? bearer(KEY) : { authorization: g.pick(authorizations) }
    const roll = g.int(8)
    if (roll === 0) return { kind: 'bad json', options: { method: 'POST', url: g.pick(['/v1/tasks', '/v1/tasks/batch']), headers: { ...auth, 'content-type': 'application/json' }, payload: g.pick(rawBodies) } }
    if (roll === 1 || roll === 2) return { kind: 'hostile task', options: { method: 'POST', url: '/v1/tasks', headers: auth, payload: task() } }
    if (roll === 3) return { kind: 'hostile batch', options: { method: 'POST', url: '/v1/tasks/batch', headers: auth, payload: g.next() < 0.7 ? { tasks: Array.from({ length: g.int(5) }, task) } : (value() as object ?? {}) } }
    if (roll === 4) {
      const route = g.pick(routes)
      return { kind: 'hostile id', options: { method: route.method, url: route.url(g.pick(ids)), headers: auth, ...(route.method === 'POST' ? { payload: {} } : {}) } }
    }
    if (roll === 5) return { kind: 'hostile query', options: { method: 'GET', url: `${g.pick(['/v1/tasks', '/v1/stats', '/v1/queues', '/v1/task-types'])}?${g.pick(queries)}&${g.pick(queries)}`, headers: auth } }
    if (roll === 6) {
      const headers: Record<string, string> = { ...auth, 'content-type': g.pick(contentTypes) }
      if (g.next() < 0.5) headers['idempotency-key'] = g.pick(STRINGS.filter((s) => /^[\x20-\x7e]*$/.test(s)))
      if (g.next() < 0.3) headers['x-request-id'] = g.pick(['', '../../x', 'a'.repeat(500), '<script>', 'ok-id'])
      if (g.next() < 0.2) headers['content-encoding'] = g.pick(['gzip', 'br', 'deflate', 'identity, gzip'])
      if (g.next() < 0.2) headers.accept = g.pick(['text/html', 'application/xml', '*/*;q=0', 'x'.repeat(3_000)])
      if (g.next() < 0.1) headers['x-forwarded-for'] = g.pick(['127.0.0.1', '::1, 10.0.0.1', 'x'.repeat(1_000)])
      return { kind: 'header abuse', options: { method: 'POST', url: '/v1/tasks', headers, payload: g.next() < 0.5 ? JSON.stringify({ type: 'echo', payload: {} }) : 'type=echo' } }
    }
    return { kind: 'method abuse', options: { method: g.pick(['PUT', 'PATCH', 'OPTIONS', 'HEAD', 'DELETE', 'POST']), url: g.pick(['/v1/tasks', '/v1/task-types', '/v1/stats', '/healthz', '/v1', '/', '/openapi.json']), headers: auth } }
  }
}

const LEAKS = /\bat [\w.<>]+ \(|node:internal|\/work\/|\.ts:\d+|select .* from|insert into|postgres(ql)?:\/\/|redis:\/\/|ECONNREFUSED|\b127\.0\.0\.1:\d+|syntax error at/i

t.test(`${REQUESTS} malformed or hostile requests: no 5xx, problem documents, no leaks, nothing stored for a rejection`, async (t) => {
  const h = await startHarness(t, {
    env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}`, TASKLANE_ADMIN_KEY: ADMIN, TASKLANE_RATE_LIMIT_MAX: '0', TASKLANE_CLIENT_FAILURE_LIMIT: '0', TASKLANE_BODY_LIMIT_BYTES: '1048576' },
  })
  const next = fuzzer(SEED)
  const accepted = new Set<string>()
  const failures: string[] = []
  const kinds = new Map<string, number>()
  for (let i = 0; i < REQUESTS; i++) {
    const { options, kind } = next()
    kinds.set(kind, (kinds.get(kind) ?? 0) + 1)
    const describe = `#${i} ${kind}: ${options.method} ${String(options.url).slice(0, 80)}`
    let res
    try {
      res = await h.app.inject(options)
    } catch (err) {
      failures.push(`${describe}: inject threw ${(err as Error).message}`)
      continue
    }
    if (res.statusCode >= 500) failures.push(`${describe}: ${res.statusCode} ${res.body.slice(0, 200)}`)
    if (LEAKS.test(res.body.slice(0, 100_000))) failures.push(`${describe}: body leaks internals: ${res.body.slice(0, 200)}`)
    if (res.statusCode >= 400 && options.method !== 'HEAD') {
      if (!String(res.headers['content-type']).startsWith('application/problem+json')) failures.push(`${describe}: ${res.statusCode} is not a problem document`)
      else {
        let problem: { status?: number } | undefined
        try { problem = res.json() } catch { failures.push(`${describe}: ${res.statusCode} problem body is not JSON: ${JSON.stringify(res.body.slice(0, 100))}`) }
        if (problem && problem.status !== res.statusCode) failures.push(`${describe}: problem status differs`)
      }
    }
    if ((res.statusCode === 202 || res.statusCode === 200) && options.method === 'POST') {
      const body = res.json()
      if (options.url === '/v1/tasks' && options.method === 'POST') accepted.add(body.id)
      if (options.url === '/v1/tasks/batch') for (const item of body.items) accepted.add(item.id)
    }
  }
  t.comment(`seed ${SEED}: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}; ${accepted.size} tasks legitimately accepted`)
  t.same(failures.slice(0, 20), [], 'every hostile request got a clean 4xx (or a 2xx for a valid one)')
  const stored = (await h.sql<{ id: string }[]>`select id from tasks`).map((r) => r.id)
  t.same(new Set(stored), accepted, 'the only rows are those of accepted requests')
  t.equal((await h.app.inject({ url: '/healthz' })).statusCode, 200, 'the app still answers')
  t.equal((await h.app.inject({ url: '/v1/tasks?limit=1', headers: bearer(KEY) })).statusCode, 200)
})

t.test('raw HTTP abuse on a real socket: the server answers 4xx or closes, and keeps serving', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}` } })
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = h.app.server.address() as AddressInfo
  const auth = `Authorization: Bearer ${KEY}\r\n`
  const body = '{"type":"echo","payload":{}}'
  const raws = [
    'GET /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n',
    'GARBAGE\r\n\r\n', 'GET\r\n\r\n', 'GET /v1/tasks HTTP/9.9\r\nHost: x\r\n\r\n', 'GET /v1/tasks HTTP/0.9\r\n\r\n',
    'GET /v1/tasks HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n', 'GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n',
    `GET /v1/tasks HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`,
    `GET /v1/tasks HTTP/1.1\r\nHost: x\r\n${Array.from({ length: 3_000 }, (_, i) => `X-${i}: v`).join('\r\n')}\r\n\r\n`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: -1\r\n\r\n${body}`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n${body}`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n${body}\r\n0\r\n\r\n`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: ${body.length + 100}\r\n\r\n${body}`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    `POST /v1/tasks HTTP/1.1\r\nHost: x\r\n${auth}Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}GET /v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n`,
    'GET /v1/tasks/../../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n', 'GET //v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n',
    'GET http://evil.example/v1/tasks HTTP/1.1\r\nHost: x\r\n\r\n', 'GET * HTTP/1.1\r\nHost: x\r\n\r\n', 'CONNECT 127.0.0.1:22 HTTP/1.1\r\nHost: x\r\n\r\n',
    `GET /${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 'GET /v1/tasks HTTP/1.1\r\n\r\n', 'GET /v1/tasks HTTP/1.1\nHost: x\n\n',
    'GET /v1/tasks HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \xff\xfe\r\n\r\n', '\r\n\r\n\r\n',
  ]
  const statusOf = (raw: string) => new Promise<string>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port })
    let data = ''
    socket.setTimeout(5_000, () => socket.destroy())
    socket.on('data', (chunk) => { data += chunk.toString('latin1') })
    socket.on('error', () => {})
    socket.on('close', () => resolve(data.split('\r\n')[0] ?? ''))
    socket.end(raw, 'latin1')
  })
  for (const raw of raws) {
    const line = await statusOf(raw)
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(line)?.[1] ?? 0)
    t.ok(status === 0 || (status >= 400 && status < 500) || raw === raws[0], `${JSON.stringify(raw.slice(0, 60))} → ${line || 'closed'}`)
  }
  const res = await fetch(`http://127.0.0.1:${port}/healthz`)
  t.equal(res.status, 200, 'the server is still up')
  t.equal((await h.sql`select count(*)::int as n from tasks`)[0]!.n, 0, 'no raw request stored a task')
})
