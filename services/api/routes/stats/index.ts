import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { problems } from '../../schemas/problem-schema.ts'
import { QueueRef } from '../../schemas/queue-schemas.ts'
import { TaskCountsSchema } from '../../schemas/task-schemas.ts'

/** GET /v1/stats: the caller's tasks counted in Postgres, and the queues as BullMQ sees them. */
export default async function statsRoutes (app: FastifyInstance) {
  app.get('/v1/stats', {
    schema: {
      tags: ['queues'], operationId: 'getStats', summary: 'Task counts by status and type, and the queue counts',
      description: '`tasks` counts the caller\'s tasks in Postgres; `queues` is shared by every tenant.',
      response: {
        200: Type.Object({ tasks: TaskCountsSchema, queues: Type.Array(QueueRef) }),
        ...problems(401, 503),
      },
    },
  }, async (request) => {
    const [tasks, queues] = await Promise.all([app.deps.taskControl.stats(request.tenant), app.deps.queueControl.list()])
    return { tasks, queues }
  })
}
