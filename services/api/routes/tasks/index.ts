import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { problems } from '../../schemas/problem-schema.ts'
import {
  AttemptSchema, CreateTaskSchema, IdempotencyKeyHeaders, ListTasksQuery, TaskIdParams, TaskPageSchema, TaskRef,
} from '../../schemas/task-schemas.ts'

export default async function taskRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const tasks = app.deps.tasks

  app.post('/v1/tasks', {
    schema: {
      tags: ['tasks'], summary: 'Create a task',
      description: 'Stores the task, then dispatches it. With `Idempotency-Key`, a replay returns the original task.',
      headers: IdempotencyKeyHeaders,
      body: CreateTaskSchema,
      response: {
        200: { ...TaskRef, description: 'Idempotent replay: the task created by the first request with this key' },
        202: { ...TaskRef, description: 'Accepted' },
        ...problems(400, 401, 409, 413, 415, 422, 429, 503),
      },
    },
  }, async (request, reply) => {
    const { task, replayed } = await tasks.create(request.tenant, request.body, request.headers['idempotency-key'] ?? null)
    reply.header('location', `/v1/tasks/${task.id}`)
    if (replayed) reply.header('idempotent-replayed', 'true')
    return reply.code(replayed ? 200 : 202).send(task)
  })

  app.get('/v1/tasks', {
    schema: {
      tags: ['tasks'], summary: 'List tasks, newest first',
      querystring: ListTasksQuery,
      response: { 200: TaskPageSchema, ...problems(400, 401) },
    },
  }, async (request) => {
    const q = request.query
    return tasks.list(request.tenant, {
      status: q.status,
      type: q.type,
      queue: q.queue,
      createdAfter: q.createdAfter ? new Date(q.createdAfter) : undefined,
      createdBefore: q.createdBefore ? new Date(q.createdBefore) : undefined,
      limit: q.limit,
      cursor: q.cursor,
    })
  })

  app.get('/v1/tasks/:id', {
    schema: {
      tags: ['tasks'], summary: 'Read one task',
      params: TaskIdParams,
      response: { 200: TaskRef, ...problems(401, 404) },
    },
  }, async (request) => tasks.get(request.tenant, request.params.id))

  app.get('/v1/tasks/:id/attempts', {
    schema: {
      tags: ['tasks'], summary: 'Every attempt of a task',
      params: TaskIdParams,
      response: { 200: Type.Object({ items: Type.Array(AttemptSchema) }), ...problems(401, 404) },
    },
  }, async (request) => ({ items: await tasks.attempts(request.tenant, request.params.id) }))
}
