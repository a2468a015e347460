import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { PutTaskTypeSchema } from '../../../core/task-types/registered-type.ts'
import { problems } from '../../schemas/problem-schema.ts'
import { TaskTypeNameParams, TaskTypeRef, TaskTypeWithSecretSchema } from '../../schemas/task-type-schemas.ts'

/** The built-in types (read-only) and the tenant's own registered types. */
export default async function taskTypeRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const types = app.deps.taskTypeService

  app.get('/v1/task-types', {
    schema: {
      tags: ['task types'], operationId: 'listTaskTypes', summary: 'List the built-in types and the tenant\'s registered types',
      description: 'Each type with its queue, the JSON schema its payload must match, and the defaults a task of it gets.',
      response: { 200: Type.Object({ items: Type.Array(TaskTypeRef) }), ...problems(401, 503) },
    },
  }, async (request) => ({ items: types.list(request.tenant) }))

  app.get('/v1/task-types/:name', {
    schema: {
      tags: ['task types'], operationId: 'getTaskType', summary: 'Read one task type',
      description: 'A built-in type, or one of the tenant\'s registered types (another tenant\'s is a 404). Never shows a signing secret.',
      params: TaskTypeNameParams,
      response: { 200: TaskTypeRef, ...problems(400, 401, 404, 503) },
    },
  }, async (request) => types.get(request.tenant, request.params.name))

  app.put('/v1/task-types/:name', {
    schema: {
      tags: ['task types'], operationId: 'putTaskType', summary: 'Register (201) or replace (200) one of the tenant\'s task types',
      description: 'The name matches `^[a-z][a-z0-9._-]{0,62}$`; a built-in name is 409. Schemas are JSON Schema ' +
        '(draft 2020-12); an invalid one is a 400 naming its path. Each replace adds 1 to `version`; tasks keep the version ' +
        'they were created with. `queue` (default: the name) belongs to the tenant. `concurrency` and `rateLimit` are ' +
        'the limits of the type\'s queue across the cluster: types sharing a queue share them (the last write sets them). ' +
        'A webhook type\'s first answer carries its `signingSecret`, once. At most 100 types per tenant.',
      params: TaskTypeNameParams,
      body: PutTaskTypeSchema,
      response: {
        200: { ...TaskTypeWithSecretSchema, description: 'Replaced' },
        201: { ...TaskTypeWithSecretSchema, description: 'Registered' },
        ...problems(400, 401, 409, 413, 415, 503),
      },
    },
  }, async (request, reply) => {
    const { type, created, signingSecret } = await types.put(request.tenant, request.params.name, request.body)
    if (created) reply.header('location', `/v1/task-types/${type.name}`)
    return reply.code(created ? 201 : 200).send(signingSecret ? { ...type, signingSecret } : type)
  })

  app.delete('/v1/task-types/:name', {
    schema: {
      tags: ['task types'], operationId: 'deleteTaskType', summary: 'Delete a registered type',
      description: 'No task of the type can be created afterwards (422); tasks already created still run to the end.',
      params: TaskTypeNameParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problems(400, 401, 404, 409, 503) },
    },
  }, async (request, reply) => {
    await types.delete(request.tenant, request.params.name)
    return reply.code(204).send(null)
  })

  app.post('/v1/task-types/:name/rotate-secret', {
    schema: {
      tags: ['task types'], operationId: 'rotateTaskTypeSecret', summary: 'A new signing secret for a webhook type',
      description: 'Answers the type with its new `signingSecret`. The previous secret keeps signing beside it for 24 h ' +
        '(two signatures per request), so receivers can switch over. A type without a webhook executor: 409.',
      params: TaskTypeNameParams,
      response: { 200: TaskTypeWithSecretSchema, ...problems(400, 401, 404, 409, 503) },
    },
  }, async (request) => {
    const { type, signingSecret } = await types.rotateSecret(request.tenant, request.params.name)
    return { ...type, signingSecret }
  })
}
