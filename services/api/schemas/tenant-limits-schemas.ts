import { Type, type Static } from 'typebox'

const QUEUE_NAME = '^[a-z0-9][a-z0-9_-]*$'
const nullable = <T extends ReturnType<typeof Type.Integer>> (schema: T) => Type.Union([schema, Type.Null()])
// One schema with two types, not a union: the API coerces types, and a union's null branch
// would accept 0 coerced to null.
const integerOrNull = (options: { minimum: number, maximum: number }) =>
  Type.Unsafe<number | null>({ type: ['integer', 'null'], ...options })

export const TenantParams = Type.Object({ tenant: Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$' }) })

export const TenantLimitsBody = Type.Object({
  concurrency: Type.Optional(Type.Union([
    Type.Record(Type.String({ pattern: QUEUE_NAME }), Type.Integer({ minimum: 0, maximum: 100_000 }),
      { description: 'queue name to the most of the tenant\'s tasks that run in it at once (0 dispatches none)' }),
    Type.Null(),
  ])),
  createPerMinute: Type.Optional(integerOrNull({ minimum: 1, maximum: 1_000_000 })),
  retentionDays: Type.Optional(integerOrNull({ minimum: 1, maximum: 36_500 })),
}, { additionalProperties: false })
export type TenantLimitsInput = Static<typeof TenantLimitsBody>

export const TenantLimitsView = Type.Object({
  tenant: Type.String(),
  concurrency: Type.Record(Type.String(), nullable(Type.Integer()), {
    description: 'per queue: the tenant\'s own limit, else TASKLANE_TENANT_CONCURRENCY\'s; null: no limit (the dispatch window applies)',
  }),
  createPerMinute: nullable(Type.Integer({ description: 'null: no limit' })),
  retentionDays: nullable(Type.Integer({ description: 'null: the deployment\'s retention' })),
  dispatchWindow: Type.Integer({ description: 'the most tasks per queue a tenant without a concurrency limit has dispatched at once while other tenants have work in the queue' }),
  dispatchWindowAlone: Type.Integer({ description: 'the same while no other tenant has work in the queue' }),
  usage: Type.Record(Type.String(), Type.Integer(), { description: 'running tasks per queue' }),
}, { $id: 'TenantLimits', title: 'TenantLimits' })
