import type { FastifyInstance } from 'fastify'
import { Type } from 'typebox'
import { BackoffSchema } from '../../../core/task-types/task-type.ts'
import { problems } from '../../schemas/problem-schema.ts'
import { PrioritySchema } from '../../schemas/task-schemas.ts'

const TaskTypeSchema = Type.Object({
  name: Type.String(),
  queue: Type.String(),
  description: Type.String(),
  payloadSchema: Type.Unknown(),
  defaults: Type.Object({
    priority: PrioritySchema,
    maxAttempts: Type.Integer(),
    timeoutMs: Type.Integer(),
    backoff: BackoffSchema,
  }),
})

export default async function taskTypeRoutes (app: FastifyInstance) {
  app.get('/v1/task-types', {
    schema: {
      tags: ['task types'], operationId: 'listTaskTypes', summary: 'List the registered task types',
      description: 'Each type with its queue, the JSON schema its payload must match, and the defaults a task of it gets.',
      response: { 200: Type.Object({ items: Type.Array(TaskTypeSchema) }), ...problems(401, 503) },
    },
  }, async () => ({
    items: app.deps.taskTypes.list().map(({ name, queue, description, payloadSchema, defaults }) =>
      ({ name, queue, description, payloadSchema, defaults })),
  }))
}
