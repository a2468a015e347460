import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

const Liveness = Type.Object({ status: Type.Literal('ok') })
const Readiness = Type.Object({
  status: Type.Union([Type.Literal('ok'), Type.Literal('unavailable')]),
  checks: Type.Record(Type.String(), Type.String()),
})

export default async function healthRoutes (app: FastifyInstance) {
  app.get('/healthz', {
    schema: { tags: ['health'], operationId: 'getLiveness', summary: 'Liveness: the process and its event loop answer', security: [],
      description: 'No dependency is checked: a failing liveness probe restarts the process, which a database outage must not.', response: { 200: Liveness } },
    logLevel: 'warn',
  }, async () => ({ status: 'ok' as const }))

  app.get('/readyz', {
    schema: {
      tags: ['health'], operationId: 'getReadiness', summary: 'Readiness: Postgres and Redis answer and the process is not draining', security: [],
      description: 'Also 503 under load shedding pressure or while draining, so the load balancer moves traffic elsewhere.',
      response: { 200: Readiness, 503: { ...Readiness, description: 'Not ready: which check failed' } },
    },
    logLevel: 'warn',
  }, async (_request, reply) => {
    const report = await app.deps.readiness.report()
    return reply.code(report.status === 'ok' ? 200 : 503).send(report)
  })
}
