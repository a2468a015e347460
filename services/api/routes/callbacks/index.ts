import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { problems } from '../../schemas/problem-schema.ts'
import { CallbackCompleteSchema, CallbackFailSchema, CallbackParams, CallbackProgressSchema, CallbackReplySchema } from '../../schemas/callback-schemas.ts'
import { TaskRef } from '../../schemas/task-schemas.ts'

const AUTH = 'Authenticated by the token alone (no API key): a path segment that is not a token at all is a 401, ' +
  'a token no attempt has a 404, and a token whose attempt has ended (completed, failed, timed out, cancelled) a 409.'
const COMMON = { tags: ['webhook callbacks'], security: [], params: CallbackParams }
const CONFIG = { callbackToken: true }

/** What a webhook receiver that answered 202 calls later, with the token Tasklane sent it. */
export default async function callbackRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const callbacks = app.deps.callbacks

  app.post('/v1/callbacks/:token/complete', {
    config: CONFIG,
    schema: {
      ...COMMON, operationId: 'completeCallback', summary: 'Complete a webhook attempt with its result',
      description: 'A result that does not match the type\'s resultSchema answers 200 with the task `failed`, code ' +
        '`RESULT_INVALID` (not retried). ' + AUTH,
      body: CallbackCompleteSchema,
      response: { 200: TaskRef, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request) => callbacks.complete(request.params.token, request.body.result))

  app.post('/v1/callbacks/:token/fail', {
    config: CONFIG,
    schema: {
      ...COMMON, operationId: 'failCallback', summary: 'Fail a webhook attempt',
      description: 'Retryable (the default) with attempts left: the task is queued again after its backoff, or ' +
        '`retryAfterMs` when longer. Otherwise it fails. ' + AUTH,
      body: CallbackFailSchema,
      response: { 200: TaskRef, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request) => callbacks.fail(request.params.token, request.body))

  app.post('/v1/callbacks/:token/progress', {
    config: CONFIG,
    schema: {
      ...COMMON, operationId: 'progressCallback', summary: 'Report the progress of a webhook attempt',
      description: 'Recorded on the task and sent to its event streams. ' + AUTH,
      body: CallbackProgressSchema,
      response: { 200: CallbackReplySchema, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request) => callbacks.progress(request.params.token, request.body.progress))

  app.post('/v1/callbacks/:token/heartbeat', {
    config: CONFIG,
    schema: {
      ...COMMON, operationId: 'heartbeatCallback', summary: 'Hear whether a webhook attempt was cancelled',
      description: 'The attempt stays open until a complete, a fail or its deadline; a heartbeat does not move the deadline. ' + AUTH,
      response: { 200: CallbackReplySchema, ...problems(400, 401, 404, 409, 415, 503) },
    },
  }, async (request) => callbacks.heartbeat(request.params.token))
}
