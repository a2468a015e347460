import type { IncomingMessage, ServerResponse } from 'node:http'
import type { FastifyInstance } from 'fastify'
import helmet from 'helmet'
import fp from 'fastify-plugin'

// JSON needs no content at all: a response opened as a page runs nothing and cannot be framed.
const API_CSP = { useDefaults: false, directives: { defaultSrc: ["'none'"], frameAncestors: ["'none'"] } }

// The HTML pages (the API reference, the queue dashboard) load their own scripts and styles
// from this origin; both put inline styles in their markup, and the dashboard uses a web font.
const PAGE_CSP = {
  useDefaults: false,
  directives: {
    defaultSrc: ["'self'"],
    baseUri: ["'self'"],
    scriptSrc: ["'self'"],
    scriptSrcAttr: ["'none'"],
    styleSrc: ["'self'", "'unsafe-inline'", 'https://fonts.googleapis.com'],
    fontSrc: ["'self'", 'data:', 'https://fonts.gstatic.com'],
    imgSrc: ["'self'", 'data:'],
    connectSrc: ["'self'"],
    objectSrc: ["'none'"],
    frameAncestors: ["'none'"],
    formAction: ["'self'"],
  },
}

const isPage = (url: string): boolean => url === '/docs' || url.startsWith('/docs/') || url === '/admin' || url.startsWith('/admin/')

const COMMON = {
  // Tasklane is served over plain HTTP in development and behind a TLS-terminating load
  // balancer in production; HSTS belongs to whoever terminates TLS.
  strictTransportSecurity: false,
  crossOriginResourcePolicy: { policy: 'same-origin' },
} as const

/**
 * The headers a helmet policy sets, taken once. No directive here depends on the request (no
 * nonce), so every response gets the same ones: set through the reply they are a field each
 * in one object; helmet's middleware per request (as @fastify/helmet runs it, building the
 * middleware again each time) cost a tenth of the API's time per created task, and its
 * setHeader calls a fiftieth of the API's allocations.
 */
function headersOf (policy: Parameters<typeof helmet>[0]): Record<string, string> {
  const headers: Record<string, string> = {}
  const recorder = {
    setHeader (name: string, value: unknown) { headers[name.toLowerCase()] = String(value) },
    removeHeader (name: string) { delete headers[name.toLowerCase()] },
  }
  helmet(policy)({} as IncomingMessage, recorder as unknown as ServerResponse, () => {})
  return headers
}

const apiHeaders = headersOf({ ...COMMON, contentSecurityPolicy: API_CSP })
const pageHeaders = headersOf({ ...COMMON, contentSecurityPolicy: PAGE_CSP })

/**
 * Security headers from helmet on every response, the errors and unknown routes included: a
 * strict policy for the JSON API, a page policy for the routes of /docs and /admin.
 */
export default fp(async function securityHeaders (app: FastifyInstance) {
  app.addHook('onRequest', (request, reply, done) => {
    const route = request.routeOptions.url
    reply.headers(route !== undefined && isPage(route) ? pageHeaders : apiHeaders)
    done()
  })
}, { name: 'security-headers' })
