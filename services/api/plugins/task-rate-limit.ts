import rateLimit from '@fastify/rate-limit'
import createError from '@fastify/error'
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import type { AppDeps } from '../app-deps.ts'

const RateLimitedError = createError<[string]>('TASKLANE_RATE_LIMITED', 'Too many tasks created; retry in %s', 429)

/** The routes that create tasks; they share one counter per tenant. */
const CREATION_ROUTES = new Set(['POST /v1/tasks', 'POST /v1/tasks/batch'])

/**
 * A per-tenant limit on task creation, counted in Redis so every API replica shares it: the
 * tenant's own createPerMinute (the admin limits route), else TASKLANE_RATE_LIMIT_MAX; a
 * tenant with no limit at all skips the counter.
 * Creation routes get the limiter hook; registered before the routes, so its onRoute hook
 * sees them. It runs after authentication (a route hook runs after the app's hooks), so the
 * counter is the tenant's, not the caller's IP.
 */
export default fp(async function taskRateLimit (app: FastifyInstance, deps: Pick<AppDeps, 'config' | 'redis' | 'tenantLimits'>) {
  const { config, tenantLimits } = deps
  // The limiter asks for the allow list and then for the maximum: one lookup per request
  // answers both. A lookup failing (the database away) falls back to the deployment's limit.
  const limits = new WeakMap<FastifyRequest, Promise<number>>()
  const limitOf = (request: FastifyRequest): Promise<number> => {
    let limit = limits.get(request)
    if (!limit) {
      limit = tenantLimits.createLimit(request.tenant).catch(() => config.TASKLANE_RATE_LIMIT_MAX)
      limits.set(request, limit)
    }
    return limit
  }
  await app.register(rateLimit, {
    global: false,
    max: async (request) => (await limitOf(request)) || 1,
    allowList: async (request) => (await limitOf(request)) === 0,
    timeWindow: config.TASKLANE_RATE_LIMIT_WINDOW_MS,
    redis: deps.redis,
    // Inside the BullMQ prefix: one Redis can serve several Tasklanes, and a hash-tagged
    // prefix keeps these keys on the same Redis Cluster slot as the queues.
    nameSpace: `${config.TASKLANE_QUEUE_PREFIX}:rate-limit:create:`,
    keyGenerator: (request) => request.tenant,
    // A Redis outage must not stop task creation: the task is stored in Postgres either way.
    skipOnError: true,
    errorResponseBuilder: (_request, context) => new RateLimitedError(context.after),
  })
  const limiter = app.rateLimit()
  app.addHook('onRoute', (route: RouteOptions) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    if (!methods.some((m) => CREATION_ROUTES.has(`${m} ${route.url}`))) return
    const existing = route.onRequest === undefined ? [] : Array.isArray(route.onRequest) ? route.onRequest : [route.onRequest]
    route.onRequest = [...existing, limiter]
  })
}, { name: 'task-rate-limit' })
