import { sql } from 'drizzle-orm'
import type { Backoff, Priority } from '../task-types/task-type.ts'
import type { TaskStatus } from '../tasks/task-view.ts'
import type { DependencyFailurePolicy } from '../dependencies/dependency-policy.ts'
import { bigint, bigserial, boolean, check, index, integer, jsonb, pgTable, primaryKey, smallint, text, timestamp, uniqueIndex, uuid } from 'drizzle-orm/pg-core'

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
  /** The version of the registered type the payload was validated against (1 for built-ins). */
  typeVersion: integer('type_version').notNull().default(1),
  cancelRequestedAt: timestamp('cancel_requested_at', tz),
  /** Queued but kept out of BullMQ: its tenant's dispatch window was full; the admission loop dispatches it. */
  held: boolean('held').notNull().default(false),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  startedAt: timestamp('started_at', tz),
  finishedAt: timestamp('finished_at', tz),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
  tags: text('tags').array().notNull().default(sql`'{}'::text[]`),
  /** The schedule that made the task, and the due time it was made for (null otherwise). */
  scheduleId: uuid('schedule_id'),
  scheduledFor: timestamp('scheduled_for', tz),
  // Dependencies (see task_dependencies): how many the task has, how many it still waits for
  // (a queued task is dispatched only at 0), what it does when one fails, and whether other
  // tasks wait for this one (so the finish of a task without dependents skips the lookup).
  dependencyCount: smallint('dependency_count').notNull().default(0),
  blockedCount: integer('blocked_count').notNull().default(0),
  onDependencyFailure: text('on_dependency_failure').$type<DependencyFailurePolicy>().notNull().default('fail'),
  hasDependents: boolean('has_dependents').notNull().default(false),
}, (t) => [
  // UUIDv7 ids are time-ordered, so "newest first" is "id descending" within a tenant.
  index('tasks_tenant_id_idx').on(t.tenant, t.id.desc()),
  index('tasks_tenant_status_id_idx').on(t.tenant, t.status, t.id.desc()),
  index('tasks_tenant_type_id_idx').on(t.tenant, t.type, t.id.desc()),
  index('tasks_tenant_queue_id_idx').on(t.tenant, t.queue, t.id.desc()),
  // The reconciler scans the unfinished work only, in id order. updated_at is left out of every
  // index so that the updates which touch neither status nor an indexed column (progress) are HOT.
  index('tasks_unfinished_idx').on(t.status, t.id).where(sql`status in ('queued', 'running')`),
  // Fair sharing: the held tasks in the order the admission loop takes them (priority, then age),
  // and the dispatched tasks (in BullMQ: not held, not waiting for a dependency) it counts to
  // repair the Redis counters.
  index('tasks_held_idx').on(t.queue, t.tenant, sql`(case ${t.priority} when 'critical' then 0 when 'high' then 1 when 'normal' then 2 else 3 end)`, t.id)
    .where(sql`held and status = 'queued'`),
  index('tasks_dispatched_idx').on(t.queue, t.tenant).where(sql`not held and blocked_count = 0 and status in ('queued', 'running')`),
  uniqueIndex('tasks_tenant_idempotency_key_idx').on(t.tenant, t.idempotencyKey).where(sql`idempotency_key is not null`),
  check('tasks_status_check', sql`${t.status} in ('queued', 'running', 'completed', 'failed', 'cancelled')`),
  check('tasks_priority_check', sql`${t.priority} in ('critical', 'high', 'normal', 'low')`),
  // `?tag=x` is `tags @> array[x]`, which a GIN index answers.
  index('tasks_tags_idx').using('gin', t.tags),
  // One task per schedule and due time, whatever number of replicas fire it.
  uniqueIndex('tasks_schedule_due_idx').on(t.scheduleId, t.scheduledFor).where(sql`schedule_id is not null`),
])

export type ScheduleOverlap = 'skip' | 'allow'
export type ScheduleCatchUp = 'latest' | 'none'

export const schedules = pgTable('schedules', {
  id: uuid('id').primaryKey(),
  tenant: text('tenant').notNull(),
  name: text('name').notNull(),
  cron: text('cron').notNull(),
  timezone: text('timezone').notNull(),
  /** The task each run creates: { type, payload?, priority?, maxAttempts?, timeoutMs?, backoff?, tags? }. */
  task: jsonb('task').$type<Record<string, unknown> & { type: string }>().notNull(),
  overlap: text('overlap').$type<ScheduleOverlap>().notNull(),
  catchUp: text('catch_up').$type<ScheduleCatchUp>().notNull(),
  paused: boolean('paused').notNull().default(false),
  startAt: timestamp('start_at', tz),
  endAt: timestamp('end_at', tz),
  /** The next due time; null while paused or after the last run. Firing claims it. */
  nextRunAt: timestamp('next_run_at', tz),
  lastRunAt: timestamp('last_run_at', tz),
  lastTaskId: uuid('last_task_id'),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
}, (t) => [
  uniqueIndex('schedules_tenant_name_idx').on(t.tenant, t.name),
  index('schedules_tenant_id_idx').on(t.tenant, t.id.desc()),
  // The firing loop reads the nearest due times of every tenant.
  index('schedules_next_run_idx').on(t.nextRunAt).where(sql`next_run_at is not null`),
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
  check('task_attempts_outcome_check', sql`${t.outcome} in ('running', 'completed', 'failed', 'cancelled', 'lost', 'released', 'timed_out')`),
])

/**
 * Task counts per tenant, type and status, kept by a statement trigger on tasks (see the
 * migration that creates task_counts_maintain): GET /v1/stats sums these rows instead of
 * counting tasks. Each backend writes its own slot (its pid modulo 16), so concurrent
 * writers of one tenant and type rarely wait on the same counter row.
 */
export const taskCounts = pgTable('task_counts', {
  tenant: text('tenant').notNull(),
  type: text('type').notNull(),
  status: text('status').$type<TaskStatus>().notNull(),
  slot: smallint('slot').notNull(),
  count: bigint('count', { mode: 'number' }).notNull(),
}, (t) => [primaryKey({ columns: [t.tenant, t.type, t.status, t.slot] })])

/** Per-tenant limits that an operator sets; a null column means "the deployment's default". */
export const tenantLimits = pgTable('tenant_limits', {
  tenant: text('tenant').primaryKey(),
  retentionDays: integer('retention_days'),
  /** Queue name to the most tasks of this tenant that queue runs at once. */
  concurrency: jsonb('concurrency').$type<Record<string, number>>(),
  createPerMinute: integer('create_per_minute'),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
}, (t) => [
  check('tenant_limits_retention_days_check', sql`${t.retentionDays} is null or ${t.retentionDays} between 1 and 36500`),
  check('tenant_limits_create_per_minute_check', sql`${t.createPerMinute} is null or ${t.createPerMinute} between 1 and 1000000`),
])

// One row per edge "task_id waits for depends_on_id". Deleting either task removes the edge.
export const taskDependencies = pgTable('task_dependencies', {
  taskId: uuid('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
  dependsOnId: uuid('depends_on_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
}, (t) => [
  primaryKey({ columns: [t.taskId, t.dependsOnId] }),
  // A finishing task finds its dependents through this one.
  index('task_dependencies_depends_on_idx').on(t.dependsOnId),
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

// Notifications: a tenant's endpoints, the deliveries a terminal transition owes (written in
// the transition's own statement, so a crash cannot separate the two), and every attempt made.
export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: uuid('id').primaryKey(),
  tenant: text('tenant').notNull(),
  url: text('url').notNull(),
  events: text('events').array().notNull(),
  /** Null matches every type (and every tag); a list matches any one of its values. */
  types: text('types').array(),
  tags: text('tags').array(),
  secret: text('secret').notNull(),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
}, (t) => [
  index('webhook_endpoints_tenant_idx').on(t.tenant, t.id),
])

export const notificationOutbox = pgTable('notification_outbox', {
  /** The delivery's id: its `webhook-id` and its job id on the delivery queue. */
  id: uuid('id').primaryKey(),
  tenant: text('tenant').notNull(),
  taskId: uuid('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
  endpointId: uuid('endpoint_id').notNull().references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
  event: text('event').notNull(),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
}, (t) => [
  // The sender takes the oldest first; a purged task's rows go by its id (the cascade).
  index('notification_outbox_created_idx').on(t.createdAt, t.id),
  index('notification_outbox_task_idx').on(t.taskId),
])

export const webhookDeliveries = pgTable('webhook_deliveries', {
  id: bigserial('id', { mode: 'number' }).primaryKey(),
  taskId: uuid('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
  endpointId: uuid('endpoint_id').notNull(),
  event: text('event').notNull(),
  webhookId: text('webhook_id').notNull(),
  attempt: integer('attempt').notNull(),
  /** The HTTP status, or null when no answer came. */
  status: integer('status'),
  error: text('error'),
  at: timestamp('at', tz).notNull().defaultNow(),
}, (t) => [
  index('webhook_deliveries_task_idx').on(t.taskId, t.id),
])

// A tenant's own task types. A deleted type keeps its row (deleted_at set) so that the tasks
// already created can still be leased and checked against its result schema; a new PUT
// revives it with the next version.
export const taskTypes = pgTable('task_types', {
  tenant: text('tenant').notNull(),
  name: text('name').notNull(),
  version: integer('version').notNull(),
  queue: text('queue').notNull(),
  description: text('description').notNull().default(''),
  payloadSchema: jsonb('payload_schema'),
  resultSchema: jsonb('result_schema'),
  defaults: jsonb('defaults').notNull(),
  concurrency: integer('concurrency'),
  rateLimit: jsonb('rate_limit'),
  executor: jsonb('executor').notNull(),
  /** Webhook types: the key that signs requests, and the one it replaced until it retires. */
  signingSecret: text('signing_secret'),
  previousSigningSecret: text('previous_signing_secret'),
  previousSecretExpiresAt: timestamp('previous_secret_expires_at', tz),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', tz).notNull().defaultNow(),
  deletedAt: timestamp('deleted_at', tz),
}, (t) => [
  primaryKey({ columns: [t.tenant, t.name] }),
])

// A pull worker's hold on one attempt. The lease id is the fencing token (and the BullMQ lock
// token of the job); only a lease that has not ended, for the attempt the task is on, may
// record anything.
export const taskLeases = pgTable('task_leases', {
  leaseId: uuid('lease_id').primaryKey(),
  taskId: uuid('task_id').notNull().references(() => tasks.id, { onDelete: 'cascade' }),
  tenant: text('tenant').notNull(),
  attempt: integer('attempt').notNull(),
  workerId: text('worker_id').notNull(),
  visibilityMs: integer('visibility_ms').notNull(),
  expiresAt: timestamp('expires_at', tz).notNull(),
  deadline: timestamp('deadline', tz).notNull(),
  createdAt: timestamp('created_at', tz).notNull().defaultNow(),
  endedAt: timestamp('ended_at', tz),
  /**
   * A webhook attempt's callback token, as its SHA-256 (hex): the token itself is only in the
   * request Tasklane sent, so a database dump cannot end anyone's attempt.
   */
  callbackTokenHash: text('callback_token_hash'),
}, (t) => [
  index('task_leases_open_idx').on(t.expiresAt).where(sql`ended_at is null`),
  index('task_leases_task_idx').on(t.taskId),
  uniqueIndex('task_leases_callback_token_idx').on(t.callbackTokenHash).where(sql`callback_token_hash is not null`),
])

export type TaskRow = typeof tasks.$inferSelect
export type NewTaskRow = typeof tasks.$inferInsert
export type TaskAttemptRow = typeof taskAttempts.$inferSelect
export type ApiKeyRow = typeof apiKeys.$inferSelect
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect
export type ScheduleRow = typeof schedules.$inferSelect
export type NewScheduleRow = typeof schedules.$inferInsert
export type TenantLimitsRow = typeof tenantLimits.$inferSelect
export type TaskTypeRow = typeof taskTypes.$inferSelect
export type TaskLeaseRow = typeof taskLeases.$inferSelect
