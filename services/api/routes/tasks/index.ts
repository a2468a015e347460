import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { isStorableDate, STORABLE_DATE_MESSAGE } from '../../../core/db/timestamp-text.ts'
import { ValidationError } from '../../../core/errors.ts'
import type { CreateTaskInput } from '../../../core/tasks/task-service.ts'
import { problems, RATE_LIMIT_HEADERS } from '../../schemas/problem-schema.ts'
import {
  AttemptSchema, CreateBatchSchema, LIST_LIMIT_DEFAULT, CreateTaskSchema, IdempotencyKeyHeaders, ListTasksQuery, TaskIdParams, TaskItemsSchema,
  TaskPageSchema, TaskRef,
} from '../../schemas/task-schemas.ts'

/** A date filter Postgres can compare with: beyond years 0001-9999 it would be a 500, not a 400. */
function queryDate (text: string | undefined, name: string): Date | undefined {
  if (text === undefined) return undefined
  const date = new Date(text)
  if (!isStorableDate(date)) throw new ValidationError([{ path: `/querystring/${name}`, message: STORABLE_DATE_MESSAGE }])
  return date
}

export default async function taskRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const tasks = app.deps.tasks
  const control = app.deps.taskControl
  const created = { ...RATE_LIMIT_HEADERS, Location: { type: 'string', description: 'The task\'s URL' } }

  app.post('/v1/tasks', {
    schema: {
      tags: ['tasks'], operationId: 'createTask', summary: 'Create a task',
      description: 'Stores the task, then dispatches it. With `Idempotency-Key`, a replay returns the original task.',
      headers: IdempotencyKeyHeaders,
      body: CreateTaskSchema,
      response: {
        200: { ...TaskRef, description: 'Idempotent replay: the task created by the first request with this key', headers: created },
        202: { ...TaskRef, description: 'Accepted', headers: created },
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
      tags: ['tasks'], operationId: 'listTasks', summary: 'List tasks, newest first',
      description: 'Filters combine with AND. Pages are keyset-paginated: pass `nextCursor` back as `cursor` for the next page.',
      querystring: ListTasksQuery,
      response: { 200: TaskPageSchema, ...problems(400, 401, 503) },
    },
  }, async (request) => {
    const q = request.query
    return tasks.list(request.tenant, {
      status: q.status,
      type: q.type,
      queue: q.queue,
      tag: q.tag,
      createdAfter: queryDate(q.createdAfter, 'createdAfter'),
      createdBefore: queryDate(q.createdBefore, 'createdBefore'),
      limit: q.limit ?? LIST_LIMIT_DEFAULT,
      cursor: q.cursor,
    })
  })

  app.get('/v1/tasks/:id', {
    schema: {
      tags: ['tasks'], operationId: 'getTask', summary: 'Read one task',
      description: 'The task as Postgres holds it; fields a type lists as secret are masked.',
      params: TaskIdParams,
      response: { 200: TaskRef, ...problems(400, 401, 404, 503) },
    },
  }, async (request) => tasks.get(request.tenant, request.params.id))

  app.get('/v1/tasks/:id/attempts', {
    schema: {
      tags: ['tasks'], operationId: 'listTaskAttempts', summary: 'Every attempt of a task',
      description: 'Oldest first, with the worker, the outcome and the error of each.',
      params: TaskIdParams,
      response: { 200: Type.Object({ items: Type.Array(AttemptSchema) }), ...problems(400, 401, 404, 503) },
    },
  }, async (request) => ({ items: await tasks.attempts(request.tenant, request.params.id) }))

  app.post('/v1/tasks/batch', {
    // A batch may carry many payloads: a larger body than a single create.
    bodyLimit: app.deps.config.TASKLANE_BODY_LIMIT_BYTES * 10,
    schema: {
      tags: ['tasks'], operationId: 'createTaskBatch', summary: 'Create up to 1000 tasks, all or nothing',
      description: 'Every task is validated before any is stored; one bad task rejects the batch, with an error ' +
        'per bad field whose path starts with `/tasks/<index>`. The tasks are stored in one transaction and enqueued in bulk. ' +
        'With `Idempotency-Key`, a replay returns the original tasks (item i is stored under the key `<key> <i>`: a space, which no client key contains). A key is honoured for `TASKLANE_IDEMPOTENCY_TTL`, then free again.',
      headers: IdempotencyKeyHeaders,
      body: CreateBatchSchema,
      response: {
        200: { ...TaskItemsSchema, description: 'Idempotent replay: the tasks created by the first request with this key', headers: RATE_LIMIT_HEADERS },
        202: { ...TaskItemsSchema, description: 'Accepted, in the order given', headers: RATE_LIMIT_HEADERS },
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
      tags: ['tasks'], operationId: 'cancelTask', summary: 'Cancel a task',
      description: 'Queued: cancelled at once. Running: the handler is told to stop and the task ends `cancelled` ' +
        'shortly after (the response shows it still running). Already cancelled: no change. Completed or failed: 409.',
      params: TaskIdParams,
      response: { 202: { ...TaskRef, description: 'The task after the request' }, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request, reply) => reply.code(202).send(await control.cancel(request.tenant, request.params.id)))

  app.post('/v1/tasks/:id/retry', {
    schema: {
      tags: ['tasks'], operationId: 'retryTask', summary: 'Run a failed or cancelled task again',
      description: 'Back to `queued` with a fresh attempt budget: `maxAttempts` grows by the original budget and ' +
        'attempt numbers keep counting. Any other state: 409.',
      params: TaskIdParams,
      response: { 202: { ...TaskRef, description: 'The task, queued again' }, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request, reply) => reply.code(202).send(await control.retry(request.tenant, request.params.id)))

  app.delete('/v1/tasks/:id', {
    schema: {
      tags: ['tasks'], operationId: 'deleteTask', summary: 'Delete a finished task and its attempts',
      description: 'Only completed, failed or cancelled tasks; queued or running: 409 (cancel first).',
      params: TaskIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problems(400, 401, 404, 409, 503) },
    },
  }, async (request, reply) => {
    await control.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })
}
