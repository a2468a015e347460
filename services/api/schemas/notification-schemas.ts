import { Type } from 'typebox'
import { NOTIFY_EVENTS } from '../../core/notifications/owed-notifications.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]> (schema: T) => Type.Union([schema, Type.Null()])
const Name = Type.String({ minLength: 1, maxLength: 100 })
const Tag = Type.String({ minLength: 1, maxLength: 64 })

export const CreateEndpointSchema = Type.Object({
  url: Type.String({ format: 'uri', pattern: '^https?://', maxLength: 2048, description: 'http(s) URL; the address policy applies when it is called' }),
  events: Type.Array(Type.Union(NOTIFY_EVENTS.map((e) => Type.Literal(e))), { minItems: 1, maxItems: 3 }),
  types: Type.Optional(Type.Array(Name, { minItems: 1, maxItems: 100, description: 'Only tasks of one of these types (absent: every type)' })),
  tags: Type.Optional(Type.Array(Tag, { minItems: 1, maxItems: 100, description: 'Only tasks with one of these tags (absent: every task)' })),
}, { additionalProperties: false })

export const EndpointSchema = Type.Object({
  id: Type.String(),
  url: Type.String(),
  events: Type.Array(Type.String()),
  types: Nullable(Type.Array(Type.String())),
  tags: Nullable(Type.Array(Type.String())),
  createdAt: Type.String({ format: 'date-time' }),
})

export const CreatedEndpointSchema = Type.Object({
  ...EndpointSchema.properties,
  signingSecret: Type.String({ description: 'whsec_…: shown in this answer only' }),
})

export const EndpointPageSchema = Type.Object({ items: Type.Array(EndpointSchema), nextCursor: Nullable(Type.String()) })
export const EndpointListQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false })
export const EndpointIdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

export const DeliverySchema = Type.Object({
  endpointId: Type.String(),
  event: Type.String(),
  webhookId: Type.String(),
  attempt: Type.Integer(),
  status: Nullable(Type.Integer({ description: 'The HTTP status, or null when no answer came' })),
  error: Nullable(Type.String()),
  at: Type.String({ format: 'date-time' }),
})
