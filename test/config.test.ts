import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { ConfigError, loadConfig } from '../services/core/config.ts'

const server = fileURLToPath(new URL('../services/api/server.ts', import.meta.url))
const worker = fileURLToPath(new URL('../services/worker/main.ts', import.meta.url))

t.test('defaults work against localhost', async (t) => {
  const config = loadConfig({})
  t.equal(config.DATABASE_URL, 'postgres://postgres@127.0.0.1:5432/tasklane')
  t.equal(config.REDIS_URL, 'redis://127.0.0.1:6379')
  t.equal(config.PORT, 3000)
  t.equal(config.METRICS_PORT, 9464)
  t.equal(config.TASKLANE_QUEUE_PREFIX, 'tasklane')
  t.equal(config.TASKLANE_AUTH, 'required')
  t.equal(config.TASKLANE_SHUTDOWN_GRACE_MS, 25000)
  t.same(config.queues, [])
  t.ok(Object.isFrozen(config))
})

t.test('values are coerced and TASKLANE_QUEUES is parsed', async (t) => {
  const config = loadConfig({ PORT: '8080', TASKLANE_QUEUES: 'default:50,http:20', TASKLANE_HTTP_ALLOW_PRIVATE: 'true', TASKLANE_QUEUE_PREFIX: '{tasklane}' })
  t.equal(config.PORT, 8080)
  t.equal(config.TASKLANE_HTTP_ALLOW_PRIVATE, true)
  t.equal(config.TASKLANE_QUEUE_PREFIX, '{tasklane}')
  t.same(config.queues, [{ name: 'default', concurrency: 50 }, { name: 'http', concurrency: 20 }])
})

t.test('a bad value is one error naming the variable', async (t) => {
  const bad: Record<string, string> = {
    PORT: 'eighty',
    METRICS_PORT: '70000',
    TASKLANE_AUTH: 'maybe',
    LOG_LEVEL: 'loud',
    DATABASE_URL: 'mysql://x',
    TASKLANE_QUEUES: 'default:fast',
    TASKLANE_SHUTDOWN_GRACE_MS: '-1',
  }
  for (const [name, value] of Object.entries(bad)) {
    let caught: unknown
    try { loadConfig({ [name]: value }) } catch (err) { caught = err }
    t.ok(caught instanceof ConfigError, `${name}=${value} is rejected`)
    t.match((caught as Error).message, name, `the message names ${name}: ${(caught as Error).message}`)
  }
})

t.test('both processes stop at start with one clear line naming the variable', async (t) => {
  for (const entry of [server, worker]) {
    const run = spawnSync(process.execPath, [entry], { env: { ...process.env, PORT: 'abc', METRICS_PORT: 'abc' }, encoding: 'utf8', timeout: 20_000 })
    t.not(run.status, 0, 'exits non-zero')
    const lines = run.stderr.trim().split('\n')
    t.equal(lines.length, 1, `one line: ${run.stderr}`)
    t.match(lines[0], /PORT/)
    t.notMatch(run.stderr, /\n\s+at /, 'no stack trace')
  }
})

t.test('retention and TTL durations are a number and a unit (s, m, h, d)', async (t) => {
  const config = loadConfig({ TASKLANE_RETENTION_COMPLETED: '90s', TASKLANE_RETENTION_FAILED: '15m', TASKLANE_IDEMPOTENCY_TTL: '2h' })
  t.same(config.retentionMs, { completed: 90_000, failed: 900_000, cancelled: 7 * 86_400_000 })
  t.equal(config.idempotencyTtlMs, 7_200_000)
  t.equal(loadConfig({}).idempotencyTtlMs, 86_400_000, 'default 24h')
  for (const bad of ['7', '1w', '-1d', '1.5h', 'd']) {
    t.throws(() => loadConfig({ TASKLANE_RETENTION_FAILED: bad }), /TASKLANE_RETENTION_FAILED must be a number and a unit/, bad)
  }
})
