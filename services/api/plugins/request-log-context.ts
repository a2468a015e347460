import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

/**
 * Puts what a request is about on its log lines: the task id of a `/:id` route (a created
 * task's id is added by the access line, access-log.ts) and (set by authentication on
 * request.log) the tenant. Fastify writes "request completed" through
 * reply.log, which it took from request.log before authentication replaced that, so reply.log
 * is pointed at the final one here, before validation can end the request.
 */
export default fp(async function requestLogContext (app: FastifyInstance) {
  app.addHook('preValidation', async (request, reply) => {
    const id = (request.params as { id?: unknown } | undefined)?.id
    if (typeof id === 'string' && request.routeOptions.url?.startsWith('/v1/tasks/')) {
      request.log = request.log.child({ taskId: id.slice(0, 64) })
    }
    reply.log = request.log
  })
}, { name: 'request-log-context' })
