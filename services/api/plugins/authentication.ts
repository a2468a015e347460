import type { FastifyInstance, FastifyReply, FastifyRequest, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { hashApiKey, sameHash } from '../../core/auth/api-key-hash.ts'
import { isOutage } from '../../core/outage.ts'
import type { AppDeps } from '../app-deps.ts'
import { sendProblem } from './problem-details.ts'
import { bindToRequestLog } from './request-log-context.ts'

declare module 'fastify' {
  interface FastifyRequest {
    /** The id of the API key that authenticated this request; null when none did. */
    apiKeyId: string | null
  }
  interface FastifyContextConfig {
    /** Only the admin key may call this route (queue control, the dashboard). */
    adminOnly?: boolean
    /** The route authenticates by the callback token in its path instead of an API key. */
    callbackToken?: boolean
  }
}

/**
 * An onRoute hook for plugins whose every route is for operators: `app.addHook('onRoute', adminOnlyRoutes)`
 * inside the plugin (before its routes) puts them all behind TASKLANE_ADMIN_KEY.
 */
export function adminOnlyRoutes (route: RouteOptions): void {
  route.config = { ...route.config, adminOnly: true }
}

const BEARER = /^Bearer +([\x21-\x7e]+) *$/i
const BASIC = /^Basic +([A-Za-z0-9+/=]+) *$/i

function bearerToken (header: string | undefined): string | undefined {
  return header === undefined ? undefined : BEARER.exec(header)?.[1]
}

/** The admin key from `Bearer <key>`, or from `Basic` (any user name) so a browser can open the dashboard. */
function adminToken (header: string | undefined): string | undefined {
  const basic = header === undefined ? undefined : BASIC.exec(header)?.[1]
  if (basic === undefined) return bearerToken(header)
  const decoded = Buffer.from(basic, 'base64').toString('utf8')
  const colon = decoded.indexOf(':')
  return colon < 0 ? undefined : decoded.slice(colon + 1)
}

function pathOf (request: FastifyRequest): string {
  return request.url.split('?')[0] ?? '/'
}

// One body for every failure: missing header, bad scheme, unknown, revoked or malformed key.
function unauthorized (reply: FastifyReply, challenge: string) {
  reply.header('www-authenticate', challenge)
  return sendProblem(reply, 401, { code: 'UNAUTHENTICATED', detail: 'A valid API key is required' })
}

/**
 * Authentication and tenancy. Every /v1 route needs `Authorization: Bearer <api key>`, and the
 * key's tenant becomes `request.tenant`; admin-only routes (and anything under /admin) need
 * TASKLANE_ADMIN_KEY instead. /healthz, /readyz and the docs are public; webhook callbacks
 * carry their own per-attempt token.
 */
export default fp(async function authentication (app: FastifyInstance, deps: AppDeps) {
  const { config, apiKeys } = deps
  const log = app.log.child({ component: 'authentication' })
  const adminHash = config.TASKLANE_ADMIN_KEY === '' ? null : hashApiKey(config.TASKLANE_ADMIN_KEY)
  app.decorateRequest('apiKeyId', null)

  await bootstrapKeys(app, deps)

  if (config.TASKLANE_AUTH === 'disabled') {
    log.warn('!!! TASKLANE_AUTH=disabled: AUTHENTICATION IS OFF. Anyone who can reach this port can read, ' +
      'create and cancel every task and control the queues. Use this only for local development. !!!')
    return
  }
  if (adminHash === null) log.warn('TASKLANE_ADMIN_KEY is not set: queue control and /admin/queues refuse every request')

  app.addHook('onRequest', async (request, reply) => {
    const path = pathOf(request)
    // A matched route is judged by its pattern, an unmatched one by its raw path, so a path
    // the router decodes differently still cannot slip past.
    const route = request.routeOptions.url ?? ''
    if (request.routeOptions.config.adminOnly === true || route.startsWith('/admin') || path.startsWith('/admin')) {
      const token = adminToken(request.headers.authorization)
      const ok = adminHash !== null && token !== undefined && sameHash(hashApiKey(token), adminHash)
      if (!ok) {
        const challenge = route.startsWith('/v1') ? 'Bearer realm="tasklane admin"' : 'Basic realm="tasklane admin", charset="UTF-8"'
        return unauthorized(reply, challenge)
      }
      bindToRequestLog(request, { admin: true })
      return
    }
    if (!route.startsWith('/v1') && !path.startsWith('/v1')) return
    if (request.routeOptions.config.callbackToken === true) return

    const token = bearerToken(request.headers.authorization)
    const principal = token === undefined ? undefined : await apiKeys.authenticate(token)
    if (!principal) return unauthorized(reply, 'Bearer realm="tasklane"')
    request.tenant = principal.tenant
    request.apiKeyId = principal.keyId
    bindToRequestLog(request, { tenant: principal.tenant })
  })
}, { name: 'authentication', dependencies: ['problem-details', 'app-services'] })

/**
 * Stores TASKLANE_API_KEYS. A database that is down at start must not keep the API from
 * starting (readiness reports it): the keys are stored as soon as it answers.
 */
async function bootstrapKeys (app: FastifyInstance, deps: AppDeps) {
  const keys = deps.config.apiKeys
  if (keys.length === 0) {
    if (deps.config.TASKLANE_AUTH === 'required') app.log.warn('TASKLANE_API_KEYS is empty: only keys made with `npm run keys -- create` are accepted')
    return
  }
  let timer: NodeJS.Timeout | undefined
  const attempt = async (): Promise<void> => {
    try {
      const added = await deps.apiKeys.bootstrap(keys)
      app.log.info({ given: keys.length, added }, 'bootstrap API keys stored')
    } catch (err) {
      if (!isOutage(err)) throw err
      app.log.warn({ err }, 'could not store the bootstrap API keys yet; retrying')
      timer = setTimeout(() => { attempt().catch((e: unknown) => app.log.error({ err: e }, 'storing bootstrap API keys failed')) }, 5_000)
      timer.unref()
    }
  }
  app.addHook('onClose', async () => clearTimeout(timer))
  await attempt()
}
