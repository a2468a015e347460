import { Type } from 'typebox'
import { BackoffSchema } from '../../core/task-types/task-type.ts'
import { PrioritySchema, TagsSchema } from './task-schemas.ts'

const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(schema: T) => Type.Union([schema, Type.Null()])
const DateTime = Type.String({ format: 'date-time' })

export const TaskTemplateSchema = Type.Object({
  type: Type.String({ minLength: 1, maxLength: 100 }),
  payload: Type.Optional(Type.Unknown()),
  priority: Type.Optional(PrioritySchema),
  maxAttempts: Type.Optional(Type.Integer({ minimum: 1, maximum: 100 })),
  timeoutMs: Type.Optional(Type.Integer({ minimum: 1, maximum: 86_400_000 })),
  backoff: Type.Optional(BackoffSchema),
  tags: Type.Optional(TagsSchema),
}, { additionalProperties: false, description: 'The task each run creates, validated against its type like POST /v1/tasks' })

const Overlap = Type.Union([Type.Literal('skip'), Type.Literal('allow')], {
  description: '`skip` (default): no task while the previous one is queued or running',
})
const CatchUp = Type.Union([Type.Literal('latest'), Type.Literal('none')], {
  description: 'After downtime: `latest` (default) makes one task for the latest missed due time, `none` none',
})
const Cron = Type.String({ minLength: 1, maxLength: 200, description: '5 fields (minute hour day month weekday), or 6 with seconds first' })
const TimeZone = Type.String({ minLength: 1, maxLength: 64, description: 'IANA time zone, e.g. Europe/Berlin' })
const Name = Type.String({ minLength: 1, maxLength: 200, description: 'Unique per tenant' })

export const CreateScheduleSchema = Type.Object({
  name: Name,
  cron: Cron,
  timezone: Type.Optional(TimeZone),
  task: TaskTemplateSchema,
  overlap: Type.Optional(Overlap),
  catchUp: Type.Optional(CatchUp),
  paused: Type.Optional(Type.Boolean()),
  startAt: Type.Optional(Nullable(DateTime)),
  endAt: Type.Optional(Nullable(DateTime)),
}, { additionalProperties: false, title: 'CreateSchedule' })

export const UpdateScheduleSchema = Type.Object({
  name: Type.Optional(Name),
  cron: Type.Optional(Cron),
  timezone: Type.Optional(TimeZone),
  task: Type.Optional(TaskTemplateSchema),
  overlap: Type.Optional(Overlap),
  catchUp: Type.Optional(CatchUp),
  paused: Type.Optional(Type.Boolean()),
  startAt: Type.Optional(Nullable(DateTime)),
  endAt: Type.Optional(Nullable(DateTime)),
}, { additionalProperties: false, minProperties: 1, title: 'UpdateSchedule' })

export const ScheduleSchema = Type.Object({
  id: Type.String({ format: 'uuid' }),
  name: Type.String(),
  cron: Type.String(),
  timezone: Type.String(),
  task: Type.Unknown({ description: 'The task template' }),
  overlap: Overlap,
  catchUp: CatchUp,
  paused: Type.Boolean(),
  startAt: Nullable(DateTime),
  endAt: Nullable(DateTime),
  nextRunAt: Nullable(Type.String({ format: 'date-time', description: 'null while paused or after the last run' })),
  lastRunAt: Nullable(DateTime),
  lastTaskId: Nullable(Type.String({ format: 'uuid' })),
  createdAt: DateTime,
  updatedAt: DateTime,
}, { $id: 'Schedule', title: 'Schedule' })

export const ScheduleRef = Type.Ref('Schedule')

// A copy with one more field rather than an allOf over the Ref: fast-json-stringify merges
// allOf schemas at start, which costs the API's boot hundreds of milliseconds.
export const ScheduleDetailSchema = Type.Object({
  ...ScheduleSchema.properties,
  upcoming: Type.Array(DateTime, { description: 'The next 5 run times from now, within startAt and endAt (also while paused)' }),
}, { title: 'ScheduleWithUpcoming' })

export const ScheduleIdParams = Type.Object({ id: Type.String({ maxLength: 64 }) })

export const ListSchedulesQuery = Type.Object({
  limit: Type.Integer({ minimum: 1, maximum: 500, default: 50 }),
  cursor: Type.Optional(Type.String({ maxLength: 200 })),
}, { additionalProperties: false })

export const SchedulePageSchema = Type.Object({ items: Type.Array(ScheduleRef), nextCursor: Nullable(Type.String()) })
