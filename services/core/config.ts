import { envSchema } from 'env-schema'
import { Type, type Static } from 'typebox'
import { API_KEY_FORMAT, TENANT_NAME } from './auth/api-key-hash.ts'
import { DEFAULT_RETRY_DELAYS, parseRetryDelays } from './notifications/delivery-queue.ts'
import { parseAllowedHosts, type AllowedHosts } from './outbound/address-policy.ts'

const EnvSchema = Type.Object({
  DATABASE_URL: Type.String({ default: 'postgres://postgres@127.0.0.1:5432/tasklane', pattern: '^postgres(ql)?://' }),
  REDIS_URL: Type.String({ default: 'redis://127.0.0.1:6379', pattern: '^rediss?://' }),
  HOST: Type.String({ default: '0.0.0.0', minLength: 1 }),
  PORT: Type.Integer({ default: 3000, minimum: 0, maximum: 65535 }),
  METRICS_PORT: Type.Integer({ default: 9464, minimum: 0, maximum: 65535 }),
  TASKLANE_QUEUE_PREFIX: Type.String({ default: 'tasklane', pattern: '^[A-Za-z0-9_{}:.-]+$' }),
  TASKLANE_QUEUES: Type.String({ default: '' }),
  TASKLANE_API_KEYS: Type.String({ default: '' }),
  TASKLANE_ADMIN_KEY: Type.String({ default: '', pattern: '^([\\x21-\\x7e]{16,512})?$' }),
  TASKLANE_AUTH: Type.Union([Type.Literal('required'), Type.Literal('disabled')], { default: 'required' }),
  TASKLANE_HTTP_ALLOW_PRIVATE: Type.Boolean({ default: false }),
  // Private targets that webhooks, notifications and the http type may reach anyway: host names and CIDR ranges.
  TASKLANE_WEBHOOK_ALLOWED_HOSTS: Type.String({ default: '' }),
  // Where webhook receivers reach this API for callbacks (`<url>/v1/callbacks/<token>`); empty: no callbacks are offered.
  TASKLANE_PUBLIC_URL: Type.String({ default: '', pattern: '^(https?://[^\\s?#]+)?$' }),
  // How many webhook executor requests a worker sends at once per registered webhook queue; 0: this worker sends none.
  TASKLANE_WEBHOOK_CONCURRENCY: Type.Integer({ default: 50, minimum: 0, maximum: 1000 }),
  // How many notification deliveries a worker sends at once, and how long one may take.
  TASKLANE_NOTIFY_CONCURRENCY: Type.Integer({ default: 20, minimum: 0, maximum: 1000 }),
  TASKLANE_NOTIFY_TIMEOUT_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: 120_000 }),
  // How often the outbox sender moves owed notifications onto the delivery queue; 0 turns it off in that process.
  TASKLANE_OUTBOX_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 0 }),
  // The delays between a failed notification delivery and its next try.
  TASKLANE_NOTIFY_RETRY_DELAYS: Type.String({ default: DEFAULT_RETRY_DELAYS }),
  TASKLANE_SHUTDOWN_GRACE_MS: Type.Integer({ default: 25000, minimum: 0 }),
  TASKLANE_DRAIN_DELAY_MS: Type.Integer({ default: 5000, minimum: 0 }),
  TASKLANE_BODY_LIMIT_BYTES: Type.Integer({ default: 1_048_576, minimum: 1024 }),
  // How long the API waits for a whole request (headers and body), and for a silent socket; 0 is no limit.
  TASKLANE_REQUEST_TIMEOUT_MS: Type.Integer({ default: 30_000, minimum: 0 }),
  TASKLANE_CONNECTION_TIMEOUT_MS: Type.Integer({ default: 60_000, minimum: 0 }),
  TASKLANE_MAX_PAYLOAD_BYTES: Type.Integer({ default: 262_144, minimum: 16 }),
  TASKLANE_DB_POOL_SIZE: Type.Integer({ default: 10, minimum: 1, maximum: 200 }),
  TASKLANE_WORKER_ID: Type.String({ default: '' }),
  // How far V8 lets the old generation grow past what the last full collection kept; 0 leaves it to V8.
  TASKLANE_HEAP_GROWTH_PERCENT: Type.Integer({ default: 60, minimum: 0, maximum: 400 }),
  // How often an open event stream sends a heartbeat comment and re-checks the task.
  TASKLANE_SSE_HEARTBEAT_MS: Type.Integer({ default: 15_000, minimum: 100, maximum: 300_000 }),
  // Caps on event streams: per tenant (429 beyond) and per process (503 beyond), and the bytes a
  // stream may hold for a client that does not read before it is cut (the client resumes).
  TASKLANE_SSE_MAX_STREAMS: Type.Integer({ default: 1000, minimum: 1 }),
  TASKLANE_SSE_MAX_STREAMS_PER_TENANT: Type.Integer({ default: 100, minimum: 1 }),
  TASKLANE_SSE_MAX_BUFFER_BYTES: Type.Integer({ default: 262_144, minimum: 4096 }),
  // Unknown keys are remembered this long, so guessing costs no Postgres lookup; and 401s and
  // 404s per client address are limited (0 turns the limit off).
  TASKLANE_AUTH_FAILURE_CACHE_MS: Type.Integer({ default: 2000, minimum: 0, maximum: 60_000 }),
  TASKLANE_CLIENT_FAILURE_LIMIT: Type.Integer({ default: 100, minimum: 0 }),
  TASKLANE_CLIENT_FAILURE_WINDOW_MS: Type.Integer({ default: 60_000, minimum: 1000 }),
  // Which proxies' X-Forwarded-For to believe for the client address: '' none, 'true' any, or
  // comma-separated addresses/CIDRs of the proxies (Fastify's trustProxy).
  TASKLANE_TRUST_PROXY: Type.String({ default: '', pattern: '^[0-9A-Fa-f.:/, a-z]*$' }),
  // Secret payload fields are encrypted with this key (`<id>:<64 hex or 44 base64 chars>`);
  // the previous keys (comma-separated, same form) still decrypt during a rotation.
  TASKLANE_ENCRYPTION_KEY: Type.String({ default: '' }),
  TASKLANE_ENCRYPTION_PREVIOUS_KEYS: Type.String({ default: '' }),
  // Limits and load shedding of the public API; 0 turns a limit off.
  TASKLANE_RATE_LIMIT_MAX: Type.Integer({ default: 6000, minimum: 0 }),
  TASKLANE_RATE_LIMIT_WINDOW_MS: Type.Integer({ default: 60_000, minimum: 1000 }),
  TASKLANE_AUTH_CACHE_MS: Type.Integer({ default: 5000, minimum: 0, maximum: 300_000 }),
  TASKLANE_MAX_EVENT_LOOP_DELAY_MS: Type.Integer({ default: 1000, minimum: 0 }),
  TASKLANE_MAX_HEAP_USED_BYTES: Type.Integer({ default: 0, minimum: 0 }),
  TASKLANE_HEALTH_CHECK_INTERVAL_MS: Type.Integer({ default: 5000, minimum: 100 }),
  // Recovery: BullMQ's lock and stalled check, and the reconciler that re-enqueues
  // from Postgres what Redis lost. A reconciler interval of 0 turns it off in that process.
  TASKLANE_LOCK_DURATION_MS: Type.Integer({ default: 15_000, minimum: 500 }),
  TASKLANE_STALLED_INTERVAL_MS: Type.Integer({ default: 5_000, minimum: 200 }),
  TASKLANE_RECONCILER_INTERVAL_MS: Type.Integer({ default: 15_000, minimum: 0 }),
  TASKLANE_RECONCILER_MIN_AGE_MS: Type.Integer({ default: 10_000, minimum: 0 }),
  TASKLANE_RECONCILER_STALE_RUNNING_MS: Type.Integer({ default: 30_000, minimum: 500 }),
  TASKLANE_RECONCILER_BATCH_SIZE: Type.Integer({ default: 500, minimum: 1, maximum: 10_000 }),
  TASKLANE_MAX_LOST_ATTEMPTS: Type.Integer({ default: 3, minimum: 1, maximum: 1000 }),
  TASKLANE_RECONCILER_MAX_PER_PASS: Type.Integer({ default: 20_000, minimum: 1 }),
  // Schedules: the firing loop sleeps until the nearest due time, at most this long (0 turns the
  // loop off in that process); a due time later than the grace counts as missed when catching up.
  TASKLANE_SCHEDULER_MAX_SLEEP_MS: Type.Integer({ default: 1000, minimum: 0, maximum: 60_000 }),
  TASKLANE_SCHEDULE_MISFIRE_GRACE_MS: Type.Integer({ default: 5000, minimum: 0 }),
  // Data lifecycle: how long finished tasks and idempotency keys are kept, and the result cap.
  // Durations are a number and a unit (s, m, h, d); see parseDuration.
  TASKLANE_RETENTION_COMPLETED: Type.String({ default: '7d' }),
  TASKLANE_RETENTION_FAILED: Type.String({ default: '30d' }),
  TASKLANE_RETENTION_CANCELLED: Type.String({ default: '7d' }),
  TASKLANE_IDEMPOTENCY_TTL: Type.String({ default: '24h' }),
  TASKLANE_MAX_RESULT_BYTES: Type.Integer({ default: 1_048_576, minimum: 16 }),
  // The purger: 0 turns it off in that process. Each batch is one short delete statement.
  TASKLANE_PURGE_INTERVAL_MS: Type.Integer({ default: 15_000, minimum: 0 }),
  TASKLANE_PURGE_BATCH_SIZE: Type.Integer({ default: 1000, minimum: 1, maximum: 10_000 }),
  TASKLANE_PURGE_MAX_PER_PASS: Type.Integer({ default: 200_000, minimum: 1 }),
  // auto: the workers vacuum the task tables when the server's autovacuum is off (or off for a
  // table), by autovacuum's thresholds, checked every TASKLANE_VACUUM_CHECK_INTERVAL_MS;
  // always: also when it is on; off: never.
  TASKLANE_PURGE_VACUUM: Type.Union([Type.Literal('auto'), Type.Literal('always'), Type.Literal('off')], { default: 'auto' }),
  TASKLANE_VACUUM_CHECK_INTERVAL_MS: Type.Integer({ default: 1000, minimum: 100 }),
  // Fair sharing: the default per-tenant concurrency per queue ("default:50,reports:5"), the
  // dispatch window of a tenant without one while other tenants have work in the queue, the
  // window of a tenant alone in it, and how often the admission loop looks for held work.
  TASKLANE_TENANT_CONCURRENCY: Type.String({ default: '' }),
  TASKLANE_DISPATCH_WINDOW: Type.Integer({ default: 200, minimum: 1, maximum: 100_000 }),
  TASKLANE_DISPATCH_WINDOW_ALONE: Type.Integer({ default: 10_000, minimum: 1, maximum: 1_000_000 }),
  TASKLANE_ADMISSION_INTERVAL_MS: Type.Integer({ default: 200, minimum: 0 }),
  TASKLANE_TENANT_LIMITS_CACHE_MS: Type.Integer({ default: 2_000, minimum: 0, maximum: 60_000 }),
  LOG_LEVEL: Type.Union(
    ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)),
    { default: 'info' },
  ),
})

type Env = Static<typeof EnvSchema>

export type QueueConcurrency = { name: string, concurrency: number }

export type Config = Readonly<Env & {
  /** Parsed TASKLANE_QUEUES; empty means "every queue at its default concurrency". */
  queues: readonly QueueConcurrency[]
  /** Parsed TASKLANE_API_KEYS: keys stored (as hashes) at start. */
  apiKeys: readonly BootstrapKey[]
  /** Parsed TASKLANE_WEBHOOK_ALLOWED_HOSTS. */
  allowedHosts: AllowedHosts
  /** Parsed TASKLANE_NOTIFY_RETRY_DELAYS, in milliseconds. */
  notifyRetryDelays: readonly number[]
  /** The retention variables and the idempotency TTL, in milliseconds. */
  retentionMs: Readonly<Record<'completed' | 'failed' | 'cancelled', number>>
  idempotencyTtlMs: number
  /** Parsed TASKLANE_TENANT_CONCURRENCY: each tenant's default concurrency per queue. */
  tenantConcurrency: Readonly<Record<string, number>>
}>

export type BootstrapKey = { tenant: string, key: string }

export class ConfigError extends Error {
  override name = 'ConfigError'
}

const QUEUE_ITEM = /^([a-z0-9][a-z0-9_-]*)(?::([1-9][0-9]{0,3}))?$/

function parseQueues (raw: string): QueueConcurrency[] {
  if (raw.trim() === '') return []
  return raw.split(',').map((item) => {
    const match = QUEUE_ITEM.exec(item.trim())
    if (!match) {
      throw new ConfigError(`TASKLANE_QUEUES: "${item}" is not "name" or "name:concurrency" (e.g. default:50,http:20)`)
    }
    return { name: match[1]!, concurrency: match[2] ? Number(match[2]) : 0 }
  })
}

function parseTenantConcurrency (raw: string): Record<string, number> {
  const limits: Record<string, number> = {}
  if (raw.trim() === '') return limits
  for (const item of raw.split(',')) {
    const match = QUEUE_ITEM.exec(item.trim())
    if (!match || !match[2]) {
      throw new ConfigError(`TASKLANE_TENANT_CONCURRENCY: "${item}" is not "queue:concurrency" (e.g. default:50,reports:5)`)
    }
    limits[match[1]!] = Number(match[2])
  }
  return limits
}

// The message names the position, never the key: config errors end up in logs.
function parseApiKeys (raw: string): BootstrapKey[] {
  if (raw.trim() === '') return []
  return raw.split(',').map((item, i) => {
    const at = item.indexOf(':')
    const tenant = item.slice(0, at).trim()
    const key = item.slice(at + 1).trim()
    if (at < 0 || !TENANT_NAME.test(tenant) || !API_KEY_FORMAT.test(key)) {
      throw new ConfigError(`TASKLANE_API_KEYS: item ${i + 1} is not "tenant:key" (tenant of letters, digits, "._-"; key of 16 to 512 visible characters)`)
    }
    return { tenant, key }
  })
}

function allowedHostsOf (raw: string): AllowedHosts {
  try { return parseAllowedHosts(raw) } catch (err) { throw new ConfigError(`TASKLANE_WEBHOOK_ALLOWED_HOSTS: ${(err as Error).message}`) }
}

function retryDelaysOf (raw: string): number[] {
  try { return parseRetryDelays(raw) } catch (err) { throw new ConfigError(`TASKLANE_NOTIFY_RETRY_DELAYS: ${(err as Error).message}`) }
}

const DURATION = /^([0-9]{1,9})(s|m|h|d)$/
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const

/** "90s", "15m", "24h", "7d" in milliseconds; anything else is a ConfigError naming the variable. */
export function parseDuration (name: string, raw: string): number {
  const match = DURATION.exec(raw.trim())
  if (!match) throw new ConfigError(`invalid configuration: ${name} must be a number and a unit (s, m, h, d), e.g. 90s, 15m, 24h, 7d`)
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS]
}

/** "X must be equal to constant" says little: name the values X may take. */
function withChoices (message: string): string {
  const name = message.split(' ')[0] ?? ''
  const property = (EnvSchema.properties as Record<string, { anyOf?: { const?: unknown }[] }>)[name]
  if (!message.includes('equal to constant') || !property?.anyOf) return message
  return `${name} must be one of: ${property.anyOf.map((s) => s.const).join(', ')}`
}

/** Reads and validates the environment once; a bad variable throws one line naming it. */
export function loadConfig (env: NodeJS.ProcessEnv = process.env): Config {
  let parsed: Env
  try {
    parsed = envSchema<Env>({ schema: EnvSchema, data: env, dotenv: false })
  } catch (err) {
    // Ajv says "env/PORT must be integer" or "env must have required property 'X'".
    const message = (err as Error).message.split(',')[0]!.replace(/^env\/?/, '').trim()
    throw new ConfigError(`invalid configuration: ${withChoices(message)}`)
  }
  // An event stream is silent between heartbeats: the socket timeout must leave room for one.
  if (parsed.TASKLANE_CONNECTION_TIMEOUT_MS !== 0 && parsed.TASKLANE_CONNECTION_TIMEOUT_MS <= parsed.TASKLANE_SSE_HEARTBEAT_MS) {
    throw new ConfigError('invalid configuration: TASKLANE_CONNECTION_TIMEOUT_MS must be 0 or longer than TASKLANE_SSE_HEARTBEAT_MS')
  }
  return Object.freeze({
    ...parsed,
    queues: Object.freeze(parseQueues(parsed.TASKLANE_QUEUES)),
    apiKeys: Object.freeze(parseApiKeys(parsed.TASKLANE_API_KEYS)),
    allowedHosts: allowedHostsOf(parsed.TASKLANE_WEBHOOK_ALLOWED_HOSTS),
    notifyRetryDelays: Object.freeze(retryDelaysOf(parsed.TASKLANE_NOTIFY_RETRY_DELAYS)),
    retentionMs: Object.freeze({
      completed: parseDuration('TASKLANE_RETENTION_COMPLETED', parsed.TASKLANE_RETENTION_COMPLETED),
      failed: parseDuration('TASKLANE_RETENTION_FAILED', parsed.TASKLANE_RETENTION_FAILED),
      cancelled: parseDuration('TASKLANE_RETENTION_CANCELLED', parsed.TASKLANE_RETENTION_CANCELLED),
    }),
    idempotencyTtlMs: parseDuration('TASKLANE_IDEMPOTENCY_TTL', parsed.TASKLANE_IDEMPOTENCY_TTL),
    tenantConcurrency: Object.freeze(parseTenantConcurrency(parsed.TASKLANE_TENANT_CONCURRENCY)),
  })
}
