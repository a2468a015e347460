import type { Redis } from 'ioredis'
import type { ApiKeyService } from '../core/auth/api-key-service.ts'
import type { Config } from '../core/config.ts'
import type { DbClient } from '../core/db/db-client.ts'
import type { QueueRegistry } from '../core/queues/queue-registry.ts'
import type { Readiness } from '../core/readiness.ts'
import type { TaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import type { TaskTypeCatalog } from '../core/task-types/task-type-catalog.ts'
import type { TaskTypeService } from '../core/task-types/task-type-service.ts'
import type { LeaseService } from '../core/leases/lease-service.ts'
import type { CallbackService } from '../core/callbacks/callback-service.ts'
import type { TaskService } from '../core/tasks/task-service.ts'
import type { QueueService } from '../core/queues/queue-service.ts'
import type { TaskControlService } from '../core/tasks/task-control-service.ts'
import type { TaskEventHub } from '../core/tasks/task-event-hub.ts'
import type { NotificationService } from '../core/notifications/notification-service.ts'
import type { AdmissionLoop } from '../core/fairness/admission-loop.ts'
import type { ScheduleLoop } from '../core/schedules/schedule-loop.ts'
import type { ScheduleService } from '../core/schedules/schedule-service.ts'
import type { TenantLimitsService } from '../core/tenants/tenant-limits-service.ts'
import type { ApiMetrics } from './api-metrics.ts'

/** Everything the HTTP app needs, opened by the composition root (server.ts) or by a test. */
export type AppDeps = {
  config: Config
  database: DbClient
  redis: Redis
  queues: QueueRegistry
  taskTypes: TaskTypeRegistry
  /** Built-in and registered types in memory, kept current by LISTEN/NOTIFY; started by its plugin. */
  taskTypeCatalog: TaskTypeCatalog
  /** Registering, replacing and deleting a tenant's types. */
  taskTypeService: TaskTypeService
  /** Pull workers' leases; its expiry sweeper is started by its plugin. */
  leases: LeaseService
  /** Callbacks of webhook attempts answered 202. */
  callbacks: CallbackService
  tasks: TaskService
  /** Cancel, retry, delete and stats of a tenant's tasks. */
  taskControl: TaskControlService
  /** Shared subscriber for the task event streams. */
  taskEvents: TaskEventHub
  /** Queue counts, pause and resume. */
  queueControl: QueueService
  schedules: ScheduleService
  /** Fires due schedules; the composition root starts it. */
  scheduleLoop: ScheduleLoop
  /** Dispatches held tasks as tenants' windows free up (one replica at a time, API or worker). */
  admission: AdmissionLoop
  readiness: Readiness
  apiKeys: ApiKeyService
  metrics: ApiMetrics
  /** Notification endpoints and delivery logs. */
  notifications: NotificationService
  /** Per-tenant concurrency and creation limits (fair sharing). */
  tenantLimits: TenantLimitsService
}
