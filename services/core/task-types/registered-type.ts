import { Type, type Static } from 'typebox'
import { BackoffSchema } from './task-type.ts'
import type { TaskTypeRecord } from './task-type-repository.ts'

/** A registered type's name; its queue name follows the same rule. */
export const TYPE_NAME_PATTERN = '^[a-z][a-z0-9._-]{0,62}$'
export const TYPE_NAME = new RegExp(TYPE_NAME_PATTERN)
export const MAX_TYPES_PER_TENANT = 100
/** A schema larger than this is refused: each one is compiled into every process. */
export const MAX_SCHEMA_BYTES = 65_536

export const PullExecutorSchema = Type.Object({ kind: Type.Literal('pull') }, { additionalProperties: false })
export const WebhookExecutorSchema = Type.Object({
  kind: Type.Literal('webhook'),
  url: Type.String({ pattern: '^https?://[^\\s]+$', maxLength: 2048 }),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 100, maximum: 900_000, description: 'default 30000' })),
}, { additionalProperties: false })
export const ExecutorSchema = Type.Union([PullExecutorSchema, WebhookExecutorSchema])
export type Executor = Static<typeof ExecutorSchema>

export const RateLimitSchema = Type.Object({
  max: Type.Integer({ minimum: 1, maximum: 1_000_000 }),
  perMs: Type.Integer({ minimum: 1, maximum: 86_400_000 }),
}, { additionalProperties: false })
export type RateLimit = Static<typeof RateLimitSchema>

// Spelled out: a union built with map() is typed as never.
export const PriorityLiteralSchema = Type.Union([Type.Literal('critical'), Type.Literal('high'), Type.Literal('normal'), Type.Literal('low')])

const DefaultsSchema = Type.Object({
  priority: Type.Optional(PriorityLiteralSchema),
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000 })),
  backoff: Type.Optional(BackoffSchema),
}, { additionalProperties: false })

const JsonSchemaValue = Type.Union([Type.Object({}, { additionalProperties: true }), Type.Boolean()],
  { description: 'A JSON Schema (draft 2020-12)' })

export const PutTaskTypeSchema = Type.Object({
  description: Type.Optional(Type.String({ maxLength: 2000 })),
  queue: Type.Optional(Type.String({ pattern: TYPE_NAME_PATTERN, description: 'default: the type name; it belongs to the tenant' })),
  payloadSchema: Type.Optional(JsonSchemaValue),
  resultSchema: Type.Optional(JsonSchemaValue),
  defaults: Type.Optional(DefaultsSchema),
  concurrency: Type.Optional(Type.Integer({ minimum: 1, maximum: 100_000, description: 'how many run at once, cluster-wide' })),
  rateLimit: Type.Optional(RateLimitSchema),
  executor: ExecutorSchema,
}, { additionalProperties: false, $id: 'PutTaskType', title: 'PutTaskType' })
export type PutTaskTypeInput = Static<typeof PutTaskTypeSchema>

/** A tenant's registered type as every process keeps it in memory (never carries secrets). */
export type RegisteredType = TaskTypeRecord & {
  /** The queue's name in BullMQ and in metric labels: `<tenant>/<queue>` (`queue` is the tenant's own name). */
  internalQueue: string
}

export const internalQueueName = (tenant: string, queue: string): string => `${tenant}/${queue}`
