import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { CreateTaskInput } from '../../../core/tasks/task-service.ts'
import { problems } from '../../schemas/problem-schema.ts'
import {
  AttemptSchema, CreateBatchSchema, CreateTaskSchema, IdempotencyKeyHeaders, ListTasksQuery, TaskIdParams, TaskItemsSchema,
  TaskPageSchema, TaskRef,
} from '../../schemas/task-schemas.ts'

export default async function taskRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const tasks = app.deps.tasks
  const control = app.deps.taskControl

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

  app.post('/v1/tasks/batch', {
    // A batch may carry many payloads: a larger body than a single create.
    bodyLimit: app.deps.config.TASKLANE_BODY_LIMIT_BYTES * 10,
    schema: {
      tags: ['tasks'], summary: 'Create up to 1000 tasks, all or nothing',
      description: 'Every task is validated before any is stored; one bad task rejects the batch, with an error ' +
        'per bad field whose path starts with `/tasks/<index>`. The tasks are stored in one transaction and enqueued in bulk. ' +
        'With `Idempotency-Key`, a replay returns the original tasks (item i is stored under the key `<key> <i>`: a space, which no client key contains). A key is honoured for `TASKLANE_IDEMPOTENCY_TTL`, then free again.',
      headers: IdempotencyKeyHeaders,
      body: CreateBatchSchema,
      response: {
        200: { ...TaskItemsSchema, description: 'Idempotent replay: the tasks created by the first request with this key' },
        202: { ...TaskItemsSchema, description: 'Accepted, in the order given' },
        ...problems(400, 401, 409, 413, 415, 429, 503),
      },
    },
  }, async (request, reply) => {
    const { tasks: items, replayed } = await tasks.createBatch(request.tenant, request.body.tasks as CreateTaskInput[],
      request.headers['idempotency-key'] ?? null)
    if (replayed) reply.header('idempotent-replayed', 'true')
    return reply.code(replayed ? 200 : 202).send({ items })
  })

  app.post('/v1/tasks/:id/cancel', {
    schema: {
      tags: ['tasks'], summary: 'Cancel a task',
      description: 'Queued: cancelled at once. Running: the handler is told to stop and the task ends `cancelled` ' +
        'shortly after (the response shows it still running). Already cancelled: no change. Completed or failed: 409.',
      params: TaskIdParams,
      response: { 202: { ...TaskRef, description: 'The task after the request' }, ...problems(401, 404, 409, 503) },
    },
  }, async (request, reply) => reply.code(202).send(await control.cancel(request.tenant, request.params.id)))

  app.post('/v1/tasks/:id/retry', {
    schema: {
      tags: ['tasks'], summary: 'Run a failed or cancelled task again',
      description: 'Back to `queued` with a fresh attempt budget: `maxAttempts` grows by the original budget and ' +
        'attempt numbers keep counting. Any other state: 409.',
      params: TaskIdParams,
      response: { 202: { ...TaskRef, description: 'The task, queued again' }, ...problems(401, 404, 409, 503) },
    },
  }, async (request, reply) => reply.code(202).send(await control.retry(request.tenant, request.params.id)))

  app.delete('/v1/tasks/:id', {
    schema: {
      tags: ['tasks'], summary: 'Delete a finished task and its attempts',
      description: 'Only completed, failed or cancelled tasks; queued or running: 409 (cancel first).',
      params: TaskIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problems(401, 404, 409, 503) },
    },
  }, async (request, reply) => {
    await control.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })
}
