import { Type } from 'typebox'
import { defineTaskType } from './task-type.ts'

export const echoType = defineTaskType({
  name: 'echo',
  queue: 'default',
  description: 'Returns its payload as the result. For smoke tests.',
  payloadSchema: Type.Unknown(),
})

export const sleepType = defineTaskType({
  name: 'sleep',
  queue: 'default',
  description: 'Waits `ms` milliseconds, honouring cancel and timeout, and returns `{ sleptMs }`; with `progressSteps`, reports progress (0..100) along the way.',
  payloadSchema: Type.Object({
    ms: Type.Integer({ minimum: 0, maximum: 86_400_000 }),
    progressSteps: Type.Optional(Type.Integer({ minimum: 1, maximum: 100, description: 'report progress this many times, evenly' })),
  }, { additionalProperties: false }),
})

const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const

export const httpType = defineTaskType({
  name: 'http',
  queue: 'http',
  description: 'Makes an HTTP request and stores `{ status, headers, body }`. Network errors and 5xx are retried.',
  payloadSchema: Type.Object({
    method: Type.Union(HTTP_METHODS.map((m) => Type.Literal(m))),
    url: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 8192 }),
    // additionalProperties false: without it a name that breaks the pattern is simply not checked.
    headers: Type.Optional(Type.Record(Type.String({ pattern: '^[!#$%&\'*+.^_`|~0-9A-Za-z-]+$' }), Type.String({ maxLength: 8192, pattern: '^[^\\r\\n\\x00]*$' }),
      { additionalProperties: false })),
    body: Type.Optional(Type.Unknown()),
    timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 3_600_000 })),
    expectStatus: Type.Optional(Type.Union([
      Type.Integer({ minimum: 100, maximum: 599 }),
      Type.Array(Type.Integer({ minimum: 100, maximum: 599 }), { minItems: 1, maxItems: 50 }),
    ])),
  }, { additionalProperties: false }),
  secretFields: ['headers'],
})

export const builtinTaskTypes = [echoType, sleepType, httpType]
