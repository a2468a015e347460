import { createApiKeyService } from '../core/auth/api-key-service.ts'
import type { Config } from '../core/config.ts'
import { createDbClient } from '../core/db/db-client.ts'
import type { Logger } from '../core/log.ts'
import { createQueueRegistry } from '../core/queues/queue-registry.ts'
import { createRedisConnection } from '../core/queues/redis-connection.ts'
import { createReadiness } from '../core/readiness.ts'
import { createSecretBox } from '../core/secrets/secret-box.ts'
import { builtinTaskTypes } from '../core/task-types/builtin-types.ts'
import { createTaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import { createTaskService } from '../core/tasks/task-service.ts'
import { createQueueService } from '../core/queues/queue-service.ts'
import { createTaskControlService } from '../core/tasks/task-control-service.ts'
import { createTaskEventHub } from '../core/tasks/task-event-hub.ts'
import { createTaskEventPublisher } from '../core/tasks/task-events.ts'
import { createJsonSchemaValidator } from '../core/task-types/json-schema-validator.ts'
import { createTaskTypeCatalog } from '../core/task-types/task-type-catalog.ts'
import { createTaskTypeService } from '../core/task-types/task-type-service.ts'
import { createPullDispatcher } from '../core/leases/pull-dispatcher.ts'
import { createLeaseService } from '../core/leases/lease-service.ts'
import { createCallbackService } from '../core/callbacks/callback-service.ts'
import { createTaskTransitions } from '../core/tasks/transitions.ts'
import { createNotificationRepository } from '../core/notifications/notification-repository.ts'
import { createNotificationService } from '../core/notifications/notification-service.ts'
import { secretSealing } from '../core/notifications/secret-sealing.ts'
import { openScheduling } from '../core/schedules/open-scheduling.ts'
import { createDependentsDispatch } from '../core/dependencies/dependents-dispatch.ts'
import { createDispatchWindow } from '../core/fairness/dispatch-window.ts'
import { createStoredAdmission } from '../core/fairness/stored-admission.ts'
import { createTenantLimitsService } from '../core/tenants/tenant-limits-service.ts'
import { createAdmissionLoop } from '../core/fairness/admission-loop.ts'
import { createApiMetrics } from './api-metrics.ts'
import type { AppDeps } from './app-deps.ts'

/** Opens the API's connections and wires the core services; `close` releases them in order. */
export function openApiDeps (config: Config, log: Logger): AppDeps & { close: () => Promise<void> } {
  const database = createDbClient(config.DATABASE_URL, { max: config.TASKLANE_DB_POOL_SIZE, applicationName: 'tasklane-api' })
  const redis = createRedisConnection(config.REDIS_URL, 'producer', 'tasklane-api')
  redis.on('error', (err) => log.warn({ err }, 'redis connection error'))
  const taskTypes = createTaskTypeRegistry(builtinTaskTypes)
  const queues = createQueueRegistry({ connection: redis, prefix: config.TASKLANE_QUEUE_PREFIX, names: taskTypes.queues(), log })
  const validator = createJsonSchemaValidator()
  const taskTypeCatalog = createTaskTypeCatalog({ sql: database.sql, builtins: taskTypes, validator, log })
  taskTypeCatalog.onQueues((names) => { for (const name of names) queues.add(name) })
  const metrics = createApiMetrics({ redis, prefix: config.TASKLANE_QUEUE_PREFIX, taskTypes, queues: () => taskTypeCatalog.queues(), log })
  const secrets = createSecretBox(config)
  const taskTypeService = createTaskTypeService({ sql: database.sql, builtins: taskTypes, catalog: taskTypeCatalog, validator, queues, seal: secretSealing(secrets).seal, log })
  if (!secrets.encrypts) log.warn('TASKLANE_ENCRYPTION_KEY is not set: secret payload fields are stored unencrypted (still masked on read)')
  const dispatchWindow = createDispatchWindow({ redis, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  const tenantLimits = createTenantLimitsService({ db: database.db, config, log, redis })
  // Tasks stored outside the create path (schedules, released dependents, retries) are held
  // through the transitions, made below.
  const fairness = { window: dispatchWindow, limits: tenantLimits, log, deferred: metrics.tasksDeferred, hold: (ids: readonly string[]) => transitions.hold(ids) }
  const admitStored = createStoredAdmission({ ...fairness, queues })
  const tasks = createTaskService({ db: database.db, queues, taskTypes: taskTypeCatalog, config, log, secrets, events: { created: metrics.tasksCreated }, fairness })
  const readiness = createReadiness({ sql: database.sql, redis })
  // Task events on a connection of their own, auto-pipelined as the worker's: the events of
  // tasks leased or ended together (a lease request, the completes one statement recorded) go
  // to Redis in one write. Fail-fast like the main connection; an event is best effort.
  const eventsRedis = createRedisConnection(config.REDIS_URL, 'producer', 'tasklane-api:publish', { autoPipelining: true })
  eventsRedis.on('error', (err) => log.warn({ err }, 'redis events connection error'))
  const publisher = createTaskEventPublisher({ redis: eventsRedis, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  // The API's transitions are the client's cancel, retry and delete (and, for pull workers, the lease ones).
  const transitions = createTaskTransitions(database.sql, {
    maxLostAttempts: config.TASKLANE_MAX_LOST_ATTEMPTS, dependents: createDependentsDispatch({ queues, events: publisher, log, admitStored }),
    onLeft: (left) => dispatchWindow.release(left),
  })
  // Leasing blocks on nothing (non-blocking fetches), but BullMQ's Worker wants a connection
  // that retries forever, as consumers have. Auto-pipelined: the takes of one lease request,
  // and the moves of the leases whose ends were recorded by one statement, are issued in one
  // tick and go to Redis in one write instead of one each. Nothing on it depends on the order
  // of commands that are not awaited one after the other.
  const pullConnection = createRedisConnection(config.REDIS_URL, 'consumer', 'tasklane-api:pull', { autoPipelining: true })
  pullConnection.on('error', (err) => log.warn({ err }, 'redis pull connection error'))
  const dispatcher = createPullDispatcher({ connection: pullConnection, prefix: config.TASKLANE_QUEUE_PREFIX, queues, log })
  const leases = createLeaseService({
    sql: database.sql, transitions, catalog: taskTypeCatalog, dispatcher, queues, events: publisher, registry: metrics.registry, log,
    maxResultBytes: config.TASKLANE_MAX_RESULT_BYTES,
  })
  const callbacks = createCallbackService({
    transitions, catalog: taskTypeCatalog, queues, events: publisher, log, maxResultBytes: config.TASKLANE_MAX_RESULT_BYTES,
  })
  const taskControl = createTaskControlService({ db: database.db, transitions, queues, events: publisher, log, leases, admitStored })
  const queueControl = createQueueService({ queues })
  // Its own connection: a subscribed connection can do nothing else.
  const subscriber = createRedisConnection(config.REDIS_URL, 'consumer', 'tasklane-api:events')
  subscriber.on('error', (err) => log.warn({ err }, 'redis subscriber connection error'))
  const taskEvents = createTaskEventHub({ subscriber, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  const notifications = createNotificationService({ repo: createNotificationRepository(database.sql), seal: secretSealing(secrets).seal, assertTask: (tenant, id) => tasks.get(tenant, id) })
  const { schedules, scheduleLoop } = openScheduling({ db: database.db, tasks, config, registry: metrics.registry, log })
  // The admission loop runs in the API too, so tasks held by fair sharing are dispatched where
  // only pull workers or webhook executors consume (no worker process of the queue's own).
  const admissionLock = createDbClient(config.DATABASE_URL, { max: 1, applicationName: 'tasklane-api:admission' })
  const admission = createAdmissionLoop({
    sql: database.sql, lockSql: admissionLock.sql, transitions, window: dispatchWindow, queues, config, registry: metrics.registry, log,
    subscriber: createRedisConnection(config.REDIS_URL, 'consumer', 'tasklane-api:admission'), limits: tenantLimits,
  })
  const apiKeys = createApiKeyService({ db: database.db, log, cacheMs: config.TASKLANE_AUTH_CACHE_MS, failureCacheMs: config.TASKLANE_AUTH_FAILURE_CACHE_MS })
  return {
    config, database, redis, queues, taskTypes, taskTypeCatalog, taskTypeService, leases, callbacks, tasks, readiness, metrics, apiKeys, taskControl, queueControl, taskEvents,
    schedules, scheduleLoop, admission, notifications, tenantLimits,
    async close () {
      await Promise.all([scheduleLoop.stop(), admission.stop()])
      taskEvents.close()
      await leases.stop()
      await dispatcher.close()
      pullConnection.disconnect()
      await taskTypeCatalog.close()
      await queues.close()
      redis.disconnect()
      eventsRedis.disconnect()
      await Promise.all([database.close(), admissionLock.close()])
    },
  }
}
