import type { FastifyInstance, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import type { Logger } from '../../core/log.ts'

/**
 * Adds fields to every later line of the request. Its logger is its own (Fastify's child with
 * the request id), so adding to its bindings costs a fraction of building another child.
 */
export function bindToRequestLog (request: FastifyRequest, bindings: Record<string, unknown>): void {
  (request.log as unknown as Logger).setBindings(bindings)
}

/**
 * Puts what a request is about on its log lines: the task id of a `/:id` route (a created
 * task's id is added by the access line, access-log.ts; the tenant by authentication). Both
 * add to the bindings of the request's own logger, which reply.log is too, so the access
 * line carries them.
 */
export default fp(async function requestLogContext (app: FastifyInstance) {
  app.addHook('preValidation', async (request) => {
    const id = (request.params as { id?: unknown } | undefined)?.id
    if (typeof id === 'string' && request.routeOptions.url?.startsWith('/v1/tasks/')) {
      bindToRequestLog(request, { taskId: id.slice(0, 64) })
    }
  })
}, { name: 'request-log-context' })
