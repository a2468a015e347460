import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { problems } from '../../schemas/problem-schema.ts'
import {
  CreatedEndpointSchema, CreateEndpointSchema, DeliverySchema, EndpointIdParams, EndpointListQuery, EndpointPageSchema, EndpointSchema,
} from '../../schemas/notification-schemas.ts'
import { TaskIdParams } from '../../schemas/task-schemas.ts'

export default async function webhookEndpointRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const notifications = app.deps.notifications

  app.post('/v1/webhook-endpoints', {
    schema: {
      tags: ['notifications'], summary: 'Get told when tasks end',
      description: 'Tasklane POSTs `{ type, timestamp, data: <task> }`, signed per Standard Webhooks, on each matching terminal state. ' +
        'Filters combine with AND across `events`, `types` and `tags`, OR within one list; an absent list matches everything.',
      body: CreateEndpointSchema,
      response: { 201: CreatedEndpointSchema, ...problems(400, 401, 415) },
    },
  }, async (request, reply) => {
    const endpoint = await notifications.create(request.tenant, request.body)
    reply.header('location', `/v1/webhook-endpoints/${endpoint.id}`)
    return reply.code(201).send(endpoint)
  })

  app.get('/v1/webhook-endpoints', {
    schema: { tags: ['notifications'], summary: 'List notification endpoints', querystring: EndpointListQuery, response: { 200: EndpointPageSchema, ...problems(400, 401) } },
  }, async (request) => notifications.list(request.tenant, request.query.limit, request.query.cursor))

  app.get('/v1/webhook-endpoints/:id', {
    schema: { tags: ['notifications'], summary: 'Read one notification endpoint', params: EndpointIdParams, response: { 200: EndpointSchema, ...problems(401, 404) } },
  }, async (request) => notifications.get(request.tenant, request.params.id))

  app.delete('/v1/webhook-endpoints/:id', {
    schema: {
      tags: ['notifications'], summary: 'Delete a notification endpoint', description: 'Deliveries still owed to it are dropped.',
      params: EndpointIdParams, response: { 204: Type.Null({ description: 'Deleted' }), ...problems(401, 404) },
    },
  }, async (request, reply) => {
    await notifications.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })

  app.get('/v1/tasks/:id/deliveries', {
    schema: {
      tags: ['notifications'], summary: 'Every notification delivery attempt for a task',
      params: TaskIdParams, response: { 200: Type.Object({ items: Type.Array(DeliverySchema) }), ...problems(401, 404) },
    },
  }, async (request) => ({ items: await notifications.deliveries(request.tenant, request.params.id) }))
}
