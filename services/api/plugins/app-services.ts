import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import type { AppDeps } from '../app-deps.ts'

declare module 'fastify' {
  interface FastifyInstance {
    deps: AppDeps
  }
  interface FastifyRequest {
    /** The tenant whose data this request may see; set by authentication. */
    tenant: string
  }
}

/** Exposes the core services to routes. Until API keys exist every request is the default tenant. */
export default fp(async function appServices (app: FastifyInstance, deps: AppDeps) {
  app.decorate('deps', deps)
  app.decorateRequest('tenant', 'default')
}, { name: 'app-services' })
