import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { problems } from '../../schemas/problem-schema.ts'
import { QueueNameParams, QueueRef } from '../../schemas/queue-schemas.ts'

/**
 * Pause and resume dispatch of a queue, for every worker at once (BullMQ's global pause);
 * jobs already running finish. Operators only: its own plugin, so a guard covers all of it.
 */
export default async function queueControlRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const queues = app.deps.queueControl

  app.post('/v1/queues/:name/pause', {
    schema: {
      tags: ['queues'], operationId: 'pauseQueue', summary: 'Stop dispatching the queue (running tasks finish)',
      description: 'For every worker at once. Needs the admin key (`TASKLANE_ADMIN_KEY`), not a tenant key.',
      security: [{ adminKey: [] }],
      params: QueueNameParams,
      response: { 200: QueueRef, ...problems(400, 401, 404, 415, 503) },
    },
  }, async (request) => queues.pause(request.params.name))

  app.post('/v1/queues/:name/resume', {
    schema: {
      tags: ['queues'], operationId: 'resumeQueue', summary: 'Dispatch the queue again',
      description: 'Undoes a pause. Needs the admin key (`TASKLANE_ADMIN_KEY`), not a tenant key.',
      security: [{ adminKey: [] }],
      params: QueueNameParams,
      response: { 200: QueueRef, ...problems(400, 401, 404, 415, 503) },
    },
  }, async (request) => queues.resume(request.params.name))
}
