import { Type } from 'typebox'
import { BackoffSchema, PRIORITIES } from '../../core/task-types/task-type.ts'
import { DEPENDENCY_FAILURE_POLICIES, MAX_DEPENDENCIES } from '../../core/dependencies/dependency-policy.ts'
import { ATTEMPT_OUTCOMES, type AttemptOutcome } from '../../core/tasks/task-view.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const DateTime = Type.String({ format: 'date-time' })

export const PrioritySchema = Type.Union(PRIORITIES.map((p) => Type.Literal(p)))
export const TaskStatusSchema = Type.Union(
  (['queued', 'running', 'completed', 'failed', 'cancelled'] as const).map((s) => Type.Literal(s)))

export const TagsSchema = Type.Array(Type.String({ minLength: 1, maxLength: 64 }), {
  maxItems: 10, description: 'Up to 10 labels; `GET /v1/tasks?tag=x` finds the tasks that carry x',
})

export const TaskErrorSchema = Type.Object({ message: Type.String(), code: Type.String() })

const DependencyFailurePolicySchema = Type.Union(DEPENDENCY_FAILURE_POLICIES.map((p) => Type.Literal(p)), {
  description: 'When a dependency ends failed or cancelled: `fail` ends this task failed (code DEPENDENCY_FAILED), `run` runs it anyway',
})

export const TaskSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  type: Type.String(),
  typeVersion: Type.Integer({ description: 'the version of the type the payload was validated against' }),
  queue: Type.String({ description: 'a registered type\'s queue is `<tenant>/<queue>`' }),
  status: TaskStatusSchema,
  priority: PrioritySchema,
  payload: Type.Unknown(),
  result: Type.Unknown(),
  error: Nullable(TaskErrorSchema),
  progress: Type.Unknown({ description: '0..100, or an object the handler reported' }),
  attempts: Type.Integer(),
  maxAttempts: Type.Integer(),
  runAt: DateTime,
  timeoutMs: Type.Integer(),
  idempotencyKey: Nullable(Type.String()),
  createdAt: DateTime,
  startedAt: Nullable(DateTime),
  finishedAt: Nullable(DateTime),
  updatedAt: DateTime,
  tags: Type.Array(Type.String()),
  scheduleId: Nullable(Type.String({ format: 'uuid', description: 'The schedule that made the task' })),
  scheduledFor: Nullable(Type.String({ format: 'date-time', description: 'The due time the schedule made the task for' })),
  dependsOn: Type.Array(Type.String({ format: 'uuid' }), { description: 'The tasks this one waits for, in id order' }),
  blockedBy: Type.Array(Type.String({ format: 'uuid' }), { description: 'Those of `dependsOn` not finished yet; dispatch waits until none is left' }),
  onDependencyFailure: DependencyFailurePolicySchema,
}, {
  $id: 'Task',
  title: 'Task',
  examples: [{
    id: '0193b5a2-7c1e-7d3a-9f4b-2e8c6a1d0f57', type: 'http', typeVersion: 1, queue: 'http', status: 'queued', priority: 'normal',
    payload: { method: 'POST', url: 'https://example.com/hook', headers: { authorization: '********' } },
    result: null, error: null, progress: 0, attempts: 0, maxAttempts: 3, runAt: '2026-01-05T09:30:00.000Z', timeoutMs: 30000,
    idempotencyKey: null, createdAt: '2026-01-05T09:30:00.000Z', startedAt: null, finishedAt: null, updatedAt: '2026-01-05T09:30:00.000Z',
    tags: [], scheduleId: null, scheduledFor: null, dependsOn: [], blockedBy: [], onDependencyFailure: 'fail',
  }],
})

export const TaskRef = Type.Ref('Task')

export const CreateTaskSchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 100 }),
  payload: Type.Optional(Type.Unknown()),
  priority: Type.Optional(PrioritySchema),
  runAt: Type.Optional(DateTime),
  delayMs: Type.Optional(Type.Integer({ minimum: 0, maximum: 31_536_000_000 })),
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  backoff: Type.Optional(BackoffSchema),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000 })),
  tags: Type.Optional(TagsSchema),
  dependsOn: Type.Optional(Type.Array(Type.String({ minLength: 2, maxLength: 36 }), {
    maxItems: MAX_DEPENDENCIES,
    description: 'Task ids of your own tasks, or in a batch `"#<index>"` for an earlier item of the same batch. ' +
      'The task is dispatched once all of them have completed, and its executor receives their results.',
  })),
  onDependencyFailure: Type.Optional(DependencyFailurePolicySchema),
}, {
  additionalProperties: false,
  $id: 'CreateTask',
  title: 'CreateTask',
  examples: [{ type: 'http', payload: { method: 'POST', url: 'https://example.com/hook', body: { hello: 'world' } }, maxAttempts: 5 }],
})

export const TaskIdParams = Type.Object({ id: Type.String({ maxLength: 64, description: 'The task id (a UUID); anything else is a 404, over 64 characters a 400' }) })

export const LIST_LIMIT_DEFAULT = 50

export const ListTasksQuery = Type.Object({
  status: Type.Optional(TaskStatusSchema),
  type: Type.Optional(Type.String({ maxLength: 100 })),
  queue: Type.Optional(Type.String({ maxLength: 100 })),
  tag: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
  createdAfter: Type.Optional(DateTime),
  createdBefore: Type.Optional(DateTime),
  limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 500, default: LIST_LIMIT_DEFAULT })),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false })

export const TaskPageSchema = Type.Object({
  items: Type.Array(TaskRef),
  nextCursor: Nullable(Type.String()),
})

export const AttemptSchema = Type.Object({
  attempt: Type.Integer(),
  workerId: Type.String(),
  startedAt: DateTime,
  finishedAt: Nullable(DateTime),
  outcome: Type.Unsafe<AttemptOutcome>({
    type: 'string',
    enum: ATTEMPT_OUTCOMES,
    description: '`running` until it ends; `lost` when its worker vanished, `released` when its worker stopped and gave it back',
  }),
  error: Nullable(TaskErrorSchema),
  durationMs: Nullable(Type.Integer()),
})

export const IdempotencyKeyHeaders = Type.Object({
  'idempotency-key': Type.Optional(Type.String({ minLength: 1, maxLength: 255, pattern: '^[\\x21-\\x7e]+$' })),
})

export const MAX_BATCH = 1000

export const CreateBatchSchema = Type.Object({
  tasks: Type.Array(Type.Ref('CreateTask'), { minItems: 1, maxItems: MAX_BATCH }),
}, { additionalProperties: false, $id: 'CreateTaskBatch', title: 'CreateTaskBatch' })

export const TaskItemsSchema = Type.Object({ items: Type.Array(TaskRef) })

const StatusCounts = Type.Object({
  queued: Type.Integer(), running: Type.Integer(), completed: Type.Integer(), failed: Type.Integer(), cancelled: Type.Integer(),
})

export const TaskCountsSchema = Type.Object({
  total: Type.Integer(),
  byStatus: StatusCounts,
  byType: Type.Record(Type.String(), StatusCounts, { description: 'counts by status, per task type' }),
})
