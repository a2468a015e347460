import helmet from '@fastify/helmet'
import type { FastifyInstance, RouteOptions } from 'fastify'
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

/**
 * Security headers from @fastify/helmet on every response: a strict policy for the JSON API,
 * a page policy for /docs and /admin. Registered before the routes, so its onRoute hook
 * sees the pages whichever plugin adds them.
 */
export default fp(async function securityHeaders (app: FastifyInstance) {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (!isPage(route.url) || route.helmet !== undefined) return
    route.helmet = { contentSecurityPolicy: PAGE_CSP }
  })
  await app.register(helmet, {
    global: true,
    contentSecurityPolicy: API_CSP,
    // Tasklane is served over plain HTTP in development and behind a TLS-terminating load
    // balancer in production; HSTS belongs to whoever terminates TLS.
    strictTransportSecurity: false,
    crossOriginResourcePolicy: { policy: 'same-origin' },
  })
}, { name: 'security-headers' })
