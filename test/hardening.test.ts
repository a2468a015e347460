import { existsSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import t from 'tap'
import { createLogger } from '../services/core/log.ts'
import { createHttpHandler } from '../services/worker/handlers/http-handler.ts'
import { createAddressPolicy } from '../services/core/outbound/address-policy.ts'
import { createOutboundClient } from '../services/core/outbound/outbound-client.ts'
import { PermanentTaskError } from '../services/worker/task-handler.ts'
import { bearer } from './helpers/auth.ts'
import { startHarness } from './helpers/harness.ts'

const KEY = 'tenant-key-for-hardening-0001'
const ADMIN = 'admin-key-for-hardening-0002'
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

t.test('security headers: a strict policy on JSON, a working page policy on /docs and the dashboard', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY}`, TASKLANE_ADMIN_KEY: ADMIN } })
  const json = await h.app.inject({ url: '/v1/task-types', headers: bearer(KEY) })
  t.equal(json.headers['x-content-type-options'], 'nosniff')
  t.equal(json.headers['content-security-policy'], "default-src 'none';frame-ancestors 'none'")
  t.equal(json.headers['x-frame-options'], 'SAMEORIGIN')
  t.notOk(json.headers['x-powered-by'])
  const denied = await h.app.inject({ url: '/v1/task-types' })
  t.equal(denied.headers['x-content-type-options'], 'nosniff', 'error responses carry the headers too')

  const pages = [{ url: '/docs', headers: {} }, { url: '/admin/queues', headers: bearer(ADMIN) }]
  for (const page of pages) {
    const res = await h.app.inject({ url: page.url, headers: page.headers })
    t.ok(res.statusCode < 400, `${page.url} answers`)
    t.match(res.headers['content-security-policy'], /script-src 'self'/, `${page.url} has the page policy`)
    t.match(res.headers['content-security-policy'], /frame-ancestors 'none'/)
  }

  if (!existsSync(CHROMIUM)) { t.comment(`no browser at ${CHROMIUM}: the pages were not rendered`); return }
  // The real check that the policy breaks nothing: both pages render in a browser with no CSP violation.
  await h.app.listen({ host: '127.0.0.1', port: 0 })
  const base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
  const { chromium } = await import('playwright-core')
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] })
  t.teardown(() => browser.close())
  const context = await browser.newContext({ httpCredentials: { username: 'ops', password: ADMIN } })
  const violations: string[] = []
  context.on('console', (msg) => { if (/Content Security Policy|Refused to/i.test(msg.text())) violations.push(msg.text()) })
  const tab = await context.newPage()
  await tab.goto(`${base}/docs`, { waitUntil: 'networkidle' })
  await tab.waitForSelector('.swagger-ui .opblock', { timeout: 15_000 })
  t.ok(await tab.locator('.swagger-ui .opblock').count() > 3, 'the API reference renders its operations')
  await tab.goto(`${base}/admin/queues`, { waitUntil: 'networkidle' })
  await tab.waitForFunction("document.body.innerText.includes('default')", undefined, { timeout: 15_000 })
  t.match(await tab.innerText('body'), /default/, 'the dashboard renders the queues (the browser sent the admin key as Basic auth)')
  t.same(violations.filter((v) => !/fonts\.g/.test(v)), [], 'no Content Security Policy violation')
})

t.test('logs redact the Authorization header and secret payload fields', async (t) => {
  const lines: string[] = []
  const destination = new Writable({ write (chunk, _enc, done) { lines.push(String(chunk)); done() } })
  const secret = 'Bearer super-secret-token-in-a-header'
  // The service logger itself (createLogger), with the built-in types: http marks `headers` secret.
  const logger = createLogger({ LOG_LEVEL: 'info' } as never, { service: 'redaction-test' }, { destination })
  logger.info({ req: { headers: { authorization: secret } } }, 'request')
  logger.info({ payload: { method: 'GET', url: 'https://example.com', headers: { authorization: secret, 'x-api-key': 'k-123' } } }, 'payload')
  logger.info({ task: { type: 'http', payload: { headers: { cookie: 'sid=abc' } } } }, 'task')
  logger.info({ job: { data: { payload: { headers: { token: 'tok' } } } } }, 'job')
  // Child bindings go through the same redaction; plain values are written as they are.
  logger.child({ taskId: 't-1', attempt: 2, task: { payload: { headers: { authorization: secret } } } })
    .info({ outcome: 'completed', durationMs: 3.5, retried: false, note: 'quote " and \\ backslash' }, 'attempt finished')
  const custom = createLogger({ LOG_LEVEL: 'info' } as never, {}, { destination, taskTypes: [{ secretFields: ['password', 'api-key'] }] })
  custom.info({ payload: { user: 'ann', password: 'hunter2', 'api-key': 'ak-9' } }, 'custom type')
  const text = lines.join('')
  for (const leaked of [secret, 'super-secret', 'k-123', 'sid=abc', '"tok"', 'hunter2', 'ak-9']) t.notOk(text.includes(leaked), `"${leaked}" is not logged`)
  t.ok(text.includes('https://example.com') && text.includes('ann'), 'fields that are not secret are still logged')
  t.equal((text.match(/\[redacted\]/g) ?? []).length, 7)
  const child = JSON.parse(lines.find((l) => l.includes('attempt finished'))!)
  t.match(child, { taskId: 't-1', attempt: 2, outcome: 'completed', durationMs: 3.5, retried: false, note: 'quote " and \\ backslash', task: { payload: { headers: '[redacted]' } } },
    'strings, numbers and booleans of a line and of its bindings are written unchanged')
})

t.test('the http task refuses loopback, link-local and private targets, by literal or after DNS', async (t) => {
  const client = createOutboundClient(createAddressPolicy({ allowPrivate: false }))
  const handler = createHttpHandler(client)
  t.teardown(() => client.close())
  const targets = [
    'http://127.0.0.1/', 'http://127.0.0.1:9/', 'http://169.254.169.254/latest/meta-data/', 'http://localhost:9/', 'http://[::1]:9/',
    'http://[::ffff:127.0.0.1]:9/', 'http://0.0.0.0:9/', 'http://2130706433/', 'http://0x7f.1/', 'http://10.0.0.1/', 'http://192.168.1.1/',
    'http://172.16.0.1/', 'http://100.64.0.1/', 'http://[fe80::1]/', 'http://[fd00::1]/',
  ]
  for (const url of targets) {
    const ctx = { taskId: 't', attempt: 1, maxAttempts: 1, deadline: new Date(), payload: { method: 'GET' as const, url }, dependencies: {}, signal: AbortSignal.timeout(5_000), progress: async () => {}, log: createLogger({ LOG_LEVEL: 'silent' } as never, {}) }
    const err = await handler(ctx).then(() => undefined, (e: unknown) => e)
    t.ok(err instanceof PermanentTaskError, `${url} is refused without a retry`)
    t.equal((err as PermanentTaskError | undefined)?.code, 'FORBIDDEN_ADDRESS', `${url}: FORBIDDEN_ADDRESS`)
  }
})
