import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { problems } from '../../schemas/problem-schema.ts'
import { QueueRef } from '../../schemas/queue-schemas.ts'

/**
 * GET /v1/queues: what every queue the tenant may see holds now (the built-ins' and its own
 * registered types'), from BullMQ. Reading only; control is in queue-control.
 */
export default async function queueRoutes (app: FastifyInstance) {
  app.get('/v1/queues', {
    schema: {
      tags: ['queues'], operationId: 'listQueues', summary: 'Every queue with its job counts',
      description: 'As BullMQ sees them now; shared by every tenant.',
      response: { 200: Type.Object({ items: Type.Array(QueueRef) }), ...problems(401, 503) },
    },
  }, async (request) => ({ items: await app.deps.queueControl.list(app.deps.taskTypeCatalog.queuesOf(request.tenant)) }))
}
