import { LogController, type FastifyReply, type FastifyRequest } from 'fastify'

/**
 * One access line per request, as pino-http writes it, instead of Fastify's two ("incoming
 * request", then "request completed"): the completed line carries the request too. Half the
 * log volume, and half the logging cost of every request. Errors, unknown routes and the
 * rest keep Fastify's own lines.
 */
export class AccessLog extends LogController {
  override incomingRequest (): void {}

  override requestCompleted (error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    if (this.isLogDisabled(request)) return
    if (error) {
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime, ...createdTask(reply) }, 'request errored')
    } else {
      reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime, ...createdTask(reply) }, 'request completed')
    }
  }
}

const CREATED = '/v1/tasks/'

/**
 * A created task is named by its Location header: its id goes on the line as a field. A child
 * logger for it would be built on every creation, logged or not.
 */
function createdTask (reply: FastifyReply): { taskId?: string } {
  const location = reply.getHeader('location')
  return typeof location === 'string' && location.startsWith(CREATED) ? { taskId: location.slice(CREATED.length, CREATED.length + 64) } : {}
}
