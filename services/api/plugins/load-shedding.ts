import underPressure from '@fastify/under-pressure'
import createError from '@fastify/error'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { once } from 'node:events'
import { getHeapStatistics } from 'node:v8'
import type { AppDeps } from '../app-deps.ts'

const OverloadedError = createError<[string]>('TASKLANE_OVERLOADED', 'The service is %s; try again later', 503)

const RETRY_AFTER_SECONDS = 5
/** under-pressure's default sample interval: the event-loop delay it reports is one window's mean. */
const SAMPLE_INTERVAL_MS = 1_000
/** Probes answer even under pressure: liveness must not restart a busy pod, readiness explains itself. */
const EXEMPT = new Set(['/healthz', '/readyz'])

function withTimeout<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timeout')), ms) })
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/** A producer connection queues nothing while it (re)connects, so wait for it rather than fail at once. */
async function redisAnswers (redis: AppDeps['redis']): Promise<void> {
  if (redis.status === 'connecting' || redis.status === 'connect' || redis.status === 'reconnecting' || redis.status === 'wait') {
    await once(redis, 'ready')
  }
  await redis.ping()
}

/**
 * Load shedding with @fastify/under-pressure: a slow event loop, a heap near V8's limit or an
 * unreachable Postgres or Redis turn requests into 503 + Retry-After at once, before queues of
 * waiting requests make every request slow. /readyz reports the same pressure, so the load
 * balancer moves traffic elsewhere.
 */
export default fp(async function loadShedding (app: FastifyInstance, deps: Pick<AppDeps, 'config' | 'database' | 'redis' | 'readiness'>) {
  const { config } = deps
  const maxHeapUsedBytes = config.TASKLANE_MAX_HEAP_USED_BYTES || Math.floor(getHeapStatistics().heap_size_limit * 0.85)
  const maxEventLoopDelay = config.TASKLANE_MAX_EVENT_LOOP_DELAY_MS
  let failedChecks = 0
  // The first windows hold start-up itself (module loading, schema compilation, connecting),
  // which says nothing about serving: a first request right after "listening" must not be shed
  // for it. Event-loop delay counts from the first window that began after the server listened.
  let listenedAt: number | undefined
  app.addHook('onListen', async () => { listenedAt = Date.now() })
  const warmingUp = (): boolean => listenedAt !== undefined && Date.now() - listenedAt < 2 * SAMPLE_INTERVAL_MS

  await app.register(underPressure, {
    maxEventLoopDelay,
    sampleInterval: SAMPLE_INTERVAL_MS,
    maxHeapUsedBytes,
    retryAfter: RETRY_AFTER_SECONDS,
    healthCheckInterval: config.TASKLANE_HEALTH_CHECK_INTERVAL_MS,
    // Two failed checks in a row, not one: a check that merely waited behind a busy event loop
    // (its timeout fires before the answer is read) must not shed every request for an interval.
    healthCheck: async () => {
      try {
        await withTimeout(Promise.all([deps.database.sql`select 1`, redisAnswers(deps.redis)]), 2_000)
        failedChecks = 0
      } catch {
        failedChecks++
      }
      return failedChecks < 2
    },
    pressureHandler: (request, reply, type) => {
      if (EXEMPT.has(request.routeOptions.url ?? '')) return
      if (type === 'eventLoopDelay' && warmingUp()) return
      reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      const what = type === 'healthCheck' ? 'unavailable: a backing service does not answer' : 'overloaded'
      request.log.warn({ pressure: type }, 'request shed')
      return Promise.reject(new OverloadedError(what))
    },
  })

  deps.readiness.addCheck(() => {
    const usage = app.memoryUsage()
    if (maxEventLoopDelay > 0 && usage.eventLoopDelay > maxEventLoopDelay && !warmingUp()) return { pressure: `event loop delay ${Math.round(usage.eventLoopDelay)} ms` }
    if (usage.heapUsed > maxHeapUsedBytes) return { pressure: 'heap nearly full' }
    return { pressure: 'ok' }
  })
}, { name: 'load-shedding' })
