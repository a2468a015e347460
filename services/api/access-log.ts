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
      reply.log.error({ req: request, res: reply, err: error, responseTime: reply.elapsedTime }, 'request errored')
    } else {
      reply.log.info({ req: request, res: reply, responseTime: reply.elapsedTime }, 'request completed')
    }
  }
}
