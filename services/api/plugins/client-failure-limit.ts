import rateLimit from '@fastify/rate-limit'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { AppDeps } from '../app-deps.ts'
import { sendProblem } from './problem-details.ts'

/** Statuses that guessing keys or ids produces; each counts against the caller's address. */
const COUNTED = new Set([401, 404])
const EXEMPT = new Set(['/healthz', '/readyz'])

type Limiter = (request: FastifyRequest, options?: { increment?: boolean }) =>
  Promise<{ isAllowed: boolean, isExceeded?: boolean, remaining?: number, ttlInSeconds?: number, key: string }>

/**
 * Limits 401s and 404s per client address (@fastify/rate-limit, counted in this process):
 * an address past TASKLANE_CLIENT_FAILURE_LIMIT of them in a window gets 429 with Retry-After
 * for the rest of it, before authentication looks at its key. Guessing API keys or task ids
 * becomes slow, and shows in `tasklane_http_client_failures_total` and a log line per address.
 * Behind a proxy, TASKLANE_TRUST_PROXY makes the address the client's, from X-Forwarded-For.
 */
export default fp(async function clientFailureLimit (app: FastifyInstance, deps: Pick<AppDeps, 'config' | 'metrics'>) {
  const { config, metrics } = deps
  if (config.TASKLANE_CLIENT_FAILURE_LIMIT === 0) return
  let limiter!: Limiter
  const limitedNow = new Set<string>()
  // When each address (the limiter's key) last had a failure counted. One with none in the
  // last window cannot be over its budget, so its requests skip the limiter's lookup: most
  // callers never fail. IPv6 addresses always ask, as the limiter groups them by subnet.
  const lastFailureAt = new Map<string, number>()
  const windowMs = config.TASKLANE_CLIENT_FAILURE_WINDOW_MS
  const sweep = setInterval(() => {
    const before = Date.now() - windowMs
    for (const [key, at] of lastFailureAt) if (at <= before) lastFailureAt.delete(key)
  }, windowMs).unref()
  app.addHook('onClose', async () => clearInterval(sweep))
  // In a scope of its own, so the per-tenant creation limit can register the plugin at the root.
  await app.register(async function store (scope) {
    await scope.register(rateLimit, { global: false })
    limiter = scope.createRateLimit({ max: config.TASKLANE_CLIENT_FAILURE_LIMIT, timeWindow: config.TASKLANE_CLIENT_FAILURE_WINDOW_MS }) as Limiter
  })

  app.addHook('onRequest', async (request, reply) => {
    const ip = request.ip
    if (!ip.includes(':')) {
      const at = lastFailureAt.get(ip)
      if (at === undefined || Date.now() - at >= windowMs) return
    }
    if (EXEMPT.has(request.routeOptions.url ?? '')) return
    // A peek: only failures are counted, in onResponse. The budget is spent at `remaining` 0.
    const status = await limiter(request, { increment: false })
    if (status.isAllowed || status.remaining !== 0) return
    metrics.clientFailure(429)
    const seconds = Math.max(1, status.ttlInSeconds ?? 1)
    reply.header('retry-after', String(seconds))
    return sendProblem(reply, 429, { code: 'RATE_LIMITED', detail: `Too many failed requests from this address; retry in ${seconds} s` })
  })

  app.addHook('onResponse', async (request, reply) => {
    if (!COUNTED.has(reply.statusCode)) return
    metrics.clientFailure(reply.statusCode)
    const status = await limiter(request)
    lastFailureAt.set(status.key, Date.now())
    // One line per address and window: the failure that spent the budget.
    if (status.remaining === 0 && !limitedNow.has(status.key)) {
      limitedNow.add(status.key)
      setTimeout(() => limitedNow.delete(status.key), Math.max(1000, (status.ttlInSeconds ?? 1) * 1000)).unref()
      request.log.warn({ client: status.key, failures: config.TASKLANE_CLIENT_FAILURE_LIMIT }, 'client address spent its failure budget: refused until the window ends')
    }
  })
}, { name: 'client-failure-limit', dependencies: ['problem-details'] })
