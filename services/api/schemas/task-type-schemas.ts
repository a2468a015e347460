import { Type } from 'typebox'
import { BackoffSchema } from '../../core/task-types/task-type.ts'
import { ExecutorSchema, PriorityLiteralSchema, RateLimitSchema, TYPE_NAME_PATTERN } from '../../core/task-types/registered-type.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])

const TaskTypeProperties = {
  name: Type.String(),
  version: Type.Integer({ description: '1 for built-ins; each replace of a registered type adds 1' }),
  queue: Type.String({ description: 'A registered type\'s queue as the tenant named it; in BullMQ and metrics it is `<tenant>/<queue>`' }),
  builtin: Type.Boolean({ description: 'built-in types are global and read-only' }),
  description: Type.String(),
  payloadSchema: Type.Unknown({ description: 'JSON Schema of the payload (null: any payload)' }),
  resultSchema: Type.Unknown({ description: 'JSON Schema of the result (null: any result)' }),
  defaults: Type.Object({
    priority: PriorityLiteralSchema,
    maxAttempts: Type.Integer(),
    timeoutMs: Type.Integer(),
    backoff: BackoffSchema,
  }),
  concurrency: Nullable(Type.Integer()),
  rateLimit: Nullable(RateLimitSchema),
  executor: Type.Union([ExecutorSchema, Type.Object({ kind: Type.Literal('builtin') })]),
  createdAt: Nullable(Type.String({ format: 'date-time' })),
  updatedAt: Nullable(Type.String({ format: 'date-time' })),
}

export const TaskTypeSchema = Type.Object(TaskTypeProperties, { $id: 'TaskType', title: 'TaskType' })

export const TaskTypeRef = Type.Ref('TaskType')

export const TaskTypeWithSecretSchema = Type.Object({
  ...TaskTypeProperties,
  signingSecret: Type.Optional(Type.String({ description: 'whsec_…: shown when a webhook type is created or its secret rotated, never again' })),
})

export const TaskTypeNameParams = Type.Object({ name: Type.String({ minLength: 1, maxLength: 100 }) })
export { TYPE_NAME_PATTERN }
