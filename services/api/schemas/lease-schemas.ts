import { Type } from 'typebox'

const DateTime = Type.String({ format: 'date-time' })

export const LeaseRequestSchema = Type.Object({
  types: Type.Array(Type.String({ minLength: 1, maxLength: 100 }), { minItems: 1, maxItems: 100, description: 'the tenant\'s pull types to take tasks of' }),
  max: Type.Integer({ minimum: 1, maximum: 100, default: 1 }),
  visibilityMs: Type.Integer({ minimum: 1_000, maximum: 3_600_000, default: 60_000, description: 'the lease expires this long after it is taken unless a heartbeat extends it' }),
  waitMs: Type.Integer({ minimum: 0, maximum: 30_000, default: 0, description: 'long poll: how long to wait for the first ready task' }),
  workerId: Type.Optional(Type.String({ minLength: 1, maxLength: 200, description: 'recorded on the attempt' })),
}, { additionalProperties: false, $id: 'LeaseRequest', title: 'LeaseRequest' })

export const LeaseSchema = Type.Object({
  leaseId: Type.String({ format: 'uuid', description: 'the fencing token: heartbeat, complete and fail name it' }),
  expiresAt: DateTime,
  task: Type.Object({
    id: Type.String({ format: 'uuid' }),
    type: Type.String(),
    payload: Type.Unknown(),
    attempt: Type.Integer(),
    maxAttempts: Type.Integer(),
    deadline: Type.String({ format: 'date-time', description: 'claim time + timeoutMs; no heartbeat extends a lease past it' }),
    dependencies: Type.Optional(Type.Record(Type.String(), Type.Object({
      type: Type.String(),
      status: Type.String(),
      result: Type.Unknown(),
    }), { description: 'For a task with dependsOn: each direct dependency\'s type, status and result' })),
  }),
}, { $id: 'Lease', title: 'Lease' })

export const LeaseListSchema = Type.Object({ items: Type.Array(Type.Ref('Lease')) }, { $id: 'LeaseList', title: 'LeaseList' })

export const LeaseIdParams = Type.Object({ leaseId: Type.String({ maxLength: 64 }) })

export const HeartbeatSchema = Type.Object({
  extendMs: Type.Optional(Type.Integer({ minimum: 1_000, maximum: 3_600_000, description: 'default: the lease\'s visibilityMs' })),
  progress: Type.Optional(Type.Unknown({ description: '0..100, or an object' })),
}, { additionalProperties: false, $id: 'Heartbeat', title: 'Heartbeat' })

export const HeartbeatReplySchema = Type.Object({
  expiresAt: DateTime,
  cancelRequested: Type.Boolean({ description: 'the task was cancelled: stop working on it; complete and fail now answer 409' }),
}, { $id: 'HeartbeatReply', title: 'HeartbeatReply' })

export const CompleteSchema = Type.Object({
  result: Type.Optional(Type.Unknown()),
}, { additionalProperties: false, $id: 'CompleteLease', title: 'CompleteLease' })

export const FailSchema = Type.Object({
  error: Type.Object({
    message: Type.String({ maxLength: 10_000 }),
    code: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
  }, { additionalProperties: false }),
  retryable: Type.Optional(Type.Boolean({ default: true })),
  retryAfterMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 86_400_000, description: 'the retry waits at least this long' })),
}, { additionalProperties: false, $id: 'FailLease', title: 'FailLease' })
