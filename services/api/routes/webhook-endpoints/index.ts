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
  const tags = ['notifications']

  app.post('/v1/webhook-endpoints', {
    schema: {
      tags, operationId: 'createWebhookEndpoint', summary: 'Get told when tasks end',
      description: 'Tasklane POSTs `{ type, timestamp, data: <task> }`, signed per Standard Webhooks, on each matching terminal state. ' +
        'Filters combine with AND across `events`, `types` and `tags`, OR within one list; an absent list matches everything.',
      body: CreateEndpointSchema,
      response: { 201: { ...CreatedEndpointSchema, description: 'Created; `signingSecret` is in this answer only' }, ...problems(400, 401, 413, 415, 503) },
    },
  }, async (request, reply) => {
    const endpoint = await notifications.create(request.tenant, request.body)
    reply.header('location', `/v1/webhook-endpoints/${endpoint.id}`)
    return reply.code(201).send(endpoint)
  })

  app.get('/v1/webhook-endpoints', {
    schema: {
      tags, operationId: 'listWebhookEndpoints', summary: 'List notification endpoints, oldest first',
      description: 'Keyset-paginated: pass `nextCursor` back as `cursor` for the next page. Secrets are never shown.',
      querystring: EndpointListQuery, response: { 200: EndpointPageSchema, ...problems(400, 401, 503) },
    },
  }, async (request) => notifications.list(request.tenant, request.query.limit, request.query.cursor))

  app.get('/v1/webhook-endpoints/:id', {
    schema: {
      tags, operationId: 'getWebhookEndpoint', summary: 'Read one notification endpoint',
      description: 'The endpoint without its secret; another tenant\'s endpoint is a 404.',
      params: EndpointIdParams, response: { 200: EndpointSchema, ...problems(400, 401, 404, 503) },
    },
  }, async (request) => notifications.get(request.tenant, request.params.id))

  app.delete('/v1/webhook-endpoints/:id', {
    schema: {
      tags, operationId: 'deleteWebhookEndpoint', summary: 'Delete a notification endpoint', description: 'Deliveries still owed to it are dropped.',
      params: EndpointIdParams, response: { 204: Type.Null({ description: 'Deleted' }), ...problems(400, 401, 404, 503) },
    },
  }, async (request, reply) => {
    await notifications.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })

  app.get('/v1/tasks/:id/deliveries', {
    schema: {
      tags, operationId: 'listTaskDeliveries', summary: 'Every notification delivery attempt for a task',
      description: 'One item per request made: `status` is the HTTP status, or null when no answer came; `webhookId` is the same on every retry of one event.',
      params: TaskIdParams, response: { 200: Type.Object({ items: Type.Array(DeliverySchema) }), ...problems(400, 401, 404, 503) },
    },
  }, async (request) => ({ items: await notifications.deliveries(request.tenant, request.params.id) }))
}
