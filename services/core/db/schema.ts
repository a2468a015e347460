import { sql } from 'drizzle-orm'
import type { Backoff, Priority } from '../task-types/task-type.ts'
import type { TaskStatus } from '../tasks/task-view.ts'
import { bigserial, boolean, index, integer, jsonb, pgTable, smallint, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

const tz = { withTimezone: true, mode: 'date' } as const

export const tasks = pgTable('tasks', {
  id: uuid('id').primaryKey(),
  tenant: text('tenant').notNull().default('default'),
  type: text('type').notNull(),
  queue: text('queue').notNull(),
  status: text('status').$type<TaskStatus>().notNull(),
  priority: text('priority').$type<Priority>().notNull(),
  payload: jsonb('payload').notNull(),
  result: jsonb('result'),
  error: jsonb('error'),
  progress: jsonb('progress'),
  attempts: integer('attempts').notNull().default(0),
  maxAttempts: integer('max_attempts').notNull(),
  /** Attempts made before the last manual retry; `maxAttempts - attemptBase` is the budget of each run. */
  attemptBase: integer('attempt_base').notNull().default(0),
  backoff: jsonb('backoff').$type<Backoff>().notNull(),
  timeoutMs: integer('timeout_ms').notNull(),
  runAt: timestamp('run_at', tz).notNull(),
  idempotencyKey: text('idempotency_key'),
  requestHash: text('request_hash'),
  workerId: text('worker_id'),
  /** Names the claim that opened the running attempt: what makes a repeated claim a no-op and fences a late worker. */
  leaseId: uuid('lease_id'),
  /** Attempts that ended because their worker vanished; past TASKLANE_MAX_LOST_ATTEMPTS the task fails. */
  lostAttempts: integer('lost_attempts').notNull().default(0),
  cancelRequestedAt: timestamp('cancel_requested_at', tz),
  /** Queued but kept out of BullMQ: its tenant's dispatch window was full; the admission loop dispatches it. */
  held: boolean('held').notNull().default(false),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  startedAt: timestamp('started_at', tz),
  finishedAt: timestamp('finished_at', tz),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
}, (t) => [
  // UUIDv7 ids are time-ordered, so "newest first" is "id descending" within a tenant.
  index('tasks_tenant_id_idx').on(t.tenant, t.id.desc()),
  index('tasks_tenant_status_id_idx').on(t.tenant, t.status, t.id.desc()),
  index('tasks_tenant_type_id_idx').on(t.tenant, t.type, t.id.desc()),
  index('tasks_tenant_queue_id_idx').on(t.tenant, t.queue, t.id.desc()),
  // The reconciler scans the unfinished work only.
  index('tasks_unfinished_idx').on(t.status, t.updatedAt).where(sql`status in ('queued', 'running')`),
  // Fair sharing: the held tasks in the order the admission loop takes them (priority, then age),
  // and the dispatched unfinished tasks it counts to repair the Redis counters.
  index('tasks_held_idx').on(t.queue, t.tenant, sql`(case ${t.priority} when 'critical' then 0 when 'high' then 1 when 'normal' then 2 else 3 end)`, t.id)
    .where(sql`held and status = 'queued'`),
  index('tasks_dispatched_idx').on(t.queue, t.tenant).where(sql`not held and status in ('queued', 'running')`),
  uniqueIndex('tasks_tenant_idempotency_key_idx').on(t.tenant, t.idempotencyKey).where(sql`idempotency_key is not null`),
])

export const taskAttempts = pgTable('task_attempts', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  taskId: uuid('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
  attempt: smallint('attempt').notNull(),
  workerId: text('worker_id').notNull(),
  startedAt: timestamp('started_at', tz).notNull(),
  finishedAt: timestamp('finished_at', tz),
  outcome: text('outcome').notNull(),
  error: jsonb('error'),
  durationMs: integer('duration_ms'),
}, (t) => [
  uniqueIndex('task_attempts_task_attempt_idx').on(t.taskId, t.attempt),
])

// API keys are stored only as SHA-256 hashes of high-entropy keys; the key itself is shown once.
export const apiKeys = pgTable('api_keys', {
  id: uuid('id').primaryKey(),
  tenant: text('tenant').notNull(),
  name: text('name').notNull(),
  /** The first characters of the key, to tell keys apart in listings; not enough to guess it. */
  prefix: text('prefix').notNull(),
  keyHash: text('key_hash').notNull(),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  lastUsedAt: timestamp('last_used_at', tz),
  revokedAt: timestamp('revoked_at', tz),
}, (t) => [
  uniqueIndex('api_keys_key_hash_idx').on(t.keyHash),
  index('api_keys_tenant_idx').on(t.tenant),
])

/** A tenant's own limits; a null field means the deployment's default. */
export const tenantLimits = pgTable('tenant_limits', {
  tenant: text('tenant').primaryKey(),
  /** Queue name to the most tasks of this tenant that queue runs at once. */
  concurrency: jsonb('concurrency').$type<Record<string, number>>(),
  createPerMinute: integer('create_per_minute'),
  retentionDays: integer('retention_days'),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
})

export type TaskRow = typeof tasks.$inferSelect
export type NewTaskRow = typeof tasks.$inferInsert
export type TaskAttemptRow = typeof taskAttempts.$inferSelect
export type ApiKeyRow = typeof apiKeys.$inferSelect
export type TenantLimitsRow = typeof tenantLimits.$inferSelect
