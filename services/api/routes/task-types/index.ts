import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'

const TaskTypeSchema = Type.Object({
  name: Type.String(),
  queue: Type.String(),
  description: Type.String(),
  payloadSchema: Type.Unknown(),
  defaults: Type.Object({
    priority: Type.String(),
    maxAttempts: Type.Integer(),
    timeoutMs: Type.Integer(),
    backoff: Type.Object({ type: Type.String(), delayMs: Type.Integer() }),
  }),
})

export default async function taskTypeRoutes (app: FastifyInstance) {
  app.get('/v1/task-types', {
    schema: {
      tags: ['task types'], summary: 'List the registered task types',
      response: { 200: Type.Object({ items: Type.Array(TaskTypeSchema) }) },
    },
  }, async () => ({
    items: app.deps.taskTypes.list().map(({ name, queue, description, payloadSchema, defaults }) =>
      ({ name, queue, description, payloadSchema, defaults })),
  }))
}
