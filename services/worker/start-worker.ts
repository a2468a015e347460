import { hostname } from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Config } from '../core/config.ts'
import { createDbClient } from '../core/db/db-client.ts'
import { createDependencyRepository } from '../core/dependencies/dependency-repository.ts'
import { createDependentsDispatch } from '../core/dependencies/dependents-dispatch.ts'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics/metrics-registry.ts'
import { registerQueueMetrics } from '../core/metrics/queue-metrics.ts'
import { registerTableSizeMetrics } from '../core/metrics/table-size-metrics.ts'
import { resolveQueueConcurrency } from '../core/queues/queue-defaults.ts'
import { createQueueRegistry } from '../core/queues/queue-registry.ts'
import { createRedisConnection } from '../core/queues/redis-connection.ts'
import { createReadiness } from '../core/readiness.ts'
import { builtinTaskTypes } from '../core/task-types/builtin-types.ts'
import { createTaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import { createJsonSchemaValidator } from '../core/task-types/json-schema-validator.ts'
import { createTaskTypeCatalog } from '../core/task-types/task-type-catalog.ts'
import { openTypeSecrets } from '../core/task-types/type-secrets.ts'
import { createTaskTypeRepository } from '../core/task-types/task-type-repository.ts'
import { createSecretBox } from '../core/secrets/secret-box.ts'
import { withTaskEvents } from '../core/tasks/publishing-transitions.ts'
import { createTaskService } from '../core/tasks/task-service.ts'
import { createTaskTransitions } from '../core/tasks/transitions.ts'
import { openScheduling } from '../core/schedules/open-scheduling.ts'
import { createTaskEventPublisher } from '../core/tasks/task-events.ts'
import { createDispatchWindow } from '../core/fairness/dispatch-window.ts'
import { createTenantLimitsService } from '../core/tenants/tenant-limits-service.ts'
import { createStoredAdmission } from '../core/fairness/stored-admission.ts'
import { createDeferredCounter } from '../core/fairness/deferred-metric.ts'
import { createAdmissionLoop } from '../core/fairness/admission-loop.ts'
import { startCancelListener } from './cancel-listener.ts'
import { createHandlers } from './handlers/index.ts'
import { createWebhookExecutors } from './executors/webhook-executor.ts'
import { startNotifications } from './notifications/start-notifications.ts'
import { secretSealing } from '../core/notifications/secret-sealing.ts'
import { createConfiguredOutboundClient } from '../core/outbound/outbound-client.ts'
import { createWebhookMetrics } from '../core/outbound/webhook-metrics.ts'
import { createOpsServer } from './ops-server.ts'
import { createPurger } from './purger.ts'
import { createReconciler } from './reconciler.ts'
import { createTableVacuum } from './table-vacuum.ts'
import type { TaskHandler } from './task-handler.ts'
import { createTaskRunner } from './task-runner.ts'
import { createWorkerMetrics } from './worker-metrics.ts'
import { createWorkers } from './workers.ts'

// After the grace period, how long the runners get to hand their jobs back before the
// connections close anyway (then the locks expire and the stalled check hands them over).
const RELEASE_WAIT_MS = 3_000

/**
 * Opens connections and starts consuming; `stop` drains within the grace period, then closes.
 * `handlers` (by type name) run instead of the built-in ones, for a process embedding the worker.
 */
export async function startWorker (config: Config, log: Logger, options: { handlers?: ReadonlyMap<string, TaskHandler<unknown>> } = {}) {
  const workerId = config.TASKLANE_WORKER_ID || `${hostname()}-${process.pid}`
  const taskTypes = createTaskTypeRegistry(builtinTaskTypes)
  const queues = resolveQueueConcurrency(config.queues, taskTypes.queues())
  const database = createDbClient(config.DATABASE_URL, {
    max: config.TASKLANE_DB_POOL_SIZE, applicationName: `tasklane-worker:${workerId}`,
  })
  // Readiness pings through a fail-fast connection: the workers' own connections queue
  // commands while Redis is away and would make the probe hang instead of answering.
  const redis = createRedisConnection(config.REDIS_URL, 'producer', `tasklane-worker:${workerId}:ops`, { autoPipelining: true })
  redis.on('error', (err) => log.debug({ err }, 'redis ops connection error'))
  const readiness = createReadiness({ sql: database.sql, redis })
  const registry = createMetricsRegistry({ service: 'tasklane-worker' })
  // Registered types' queues (pull workers' among them) appear while the process runs: the
  // catalog tells the metrics and the reconciler's producers about each.
  const catalog = createTaskTypeCatalog({ sql: database.sql, builtins: taskTypes, validator: createJsonSchemaValidator(), log })
  await catalog.start()
  registerQueueMetrics({ registry, redis, prefix: config.TASKLANE_QUEUE_PREFIX, queues: () => catalog.queues(), log })
  const metrics = createWorkerMetrics({ registry, taskTypes, queues })
  // One outbound client per process: the http type, webhook executors and notifications share its policy and sockets.
  const outbound = createConfiguredOutboundClient(config)
  const webhookMetrics = createWebhookMetrics(registry)
  const handlers = createHandlers(config, outbound)
  for (const [type, handler] of options.handlers ?? []) handlers.handlers.set(type, handler)
  const taskEvents = createTaskEventPublisher({ redis, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  const secrets = createSecretBox(config)
  // The reconciler and the tasks a finished dependency unblocks enqueue through the fail-fast
  // connection: a pass during a Redis outage fails at once and the next one tries again.
  const producers = createQueueRegistry({ connection: redis, prefix: config.TASKLANE_QUEUE_PREFIX, names: taskTypes.queues(), log })
  catalog.onQueues((names) => { for (const name of names) producers.add(name) })
  // Fair sharing: the dispatch window every ending transition frees, and the admission of the
  // tasks this process stores or unblocks outside the create path (held through the transitions below).
  const dispatchWindow = createDispatchWindow({ redis, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  const tenantLimits = createTenantLimitsService({ db: database.db, config, log })
  const fairness = {
    window: dispatchWindow, limits: tenantLimits, log, deferred: createDeferredCounter(registry, taskTypes.queues()),
    hold: (ids: readonly string[]) => transitions.hold(ids),
  }
  const admitStored = createStoredAdmission({ ...fairness, queues: producers })
  const dependents = createDependentsDispatch({ queues: producers, events: taskEvents, log, admitStored })
  const transitions = withTaskEvents(createTaskTransitions(database.sql, {
    maxLostAttempts: config.TASKLANE_MAX_LOST_ATTEMPTS, dependents, onLeft: (tasks) => dispatchWindow.release(tasks),
  }), taskEvents)
  const webhooks = createWebhookExecutors({
    catalog, transitions, secrets: openTypeSecrets(createTaskTypeRepository(database.sql).secrets, secretSealing(secrets).open), outbound, metrics: webhookMetrics,
    publicUrl: config.TASKLANE_PUBLIC_URL, maxResultBytes: config.TASKLANE_MAX_RESULT_BYTES,
  })
  const runner = createTaskRunner({
    transitions, handlers: handlers.handlers, executorFor: webhooks.executorFor, workerId, log, events: metrics.events,
    dependencies: createDependencyRepository(database.sql).results, openPayload: secrets.openFields,
    maxResultBytes: config.TASKLANE_MAX_RESULT_BYTES,
  })
  const workers = createWorkers({ config, queues, processor: metrics.track(runner), log, workerId })
  // Webhook types' queues are consumed as they are registered, with no restart.
  catalog.onQueues(() => {
    if (config.TASKLANE_WEBHOOK_CONCURRENCY === 0) return
    for (const queue of catalog.webhookQueues()) {
      if (!workers.add(queue, config.TASKLANE_WEBHOOK_CONCURRENCY)) continue
      metrics.consuming(queue, config.TASKLANE_WEBHOOK_CONCURRENCY)
      log.info({ queue, concurrency: config.TASKLANE_WEBHOOK_CONCURRENCY }, 'consuming a webhook type\'s queue')
    }
  })
  const cancels = await startCancelListener({
    subscriber: createRedisConnection(config.REDIS_URL, 'consumer', `tasklane-worker:${workerId}:cancel`),
    prefix: config.TASKLANE_QUEUE_PREFIX, workers: workers.workers, log,
  })
  const reconcilerLock = createDbClient(config.DATABASE_URL, { max: 1, applicationName: `tasklane-worker:${workerId}` })
  const reconciler = createReconciler({ sql: database.sql, transitions, lockSql: reconcilerLock.sql, redis, queues: producers, config, registry, log })
  reconciler.start()
  const notifications = startNotifications({ config, sql: database.sql, openSecret: secretSealing(secrets).open, producer: redis, outbound, metrics: webhookMetrics, registry, log, workerId })
  // Schedules fire from every worker too, through the same create path as the API's.
  const scheduledTasks = createTaskService({ db: database.db, queues: producers, taskTypes: catalog, config, log, secrets, fairness })
  const { scheduleLoop } = openScheduling({ db: database.db, tasks: scheduledTasks, config, registry, log })
  scheduleLoop.start()
  // The purger holds its own advisory lock on its own connection, like the reconciler.
  const purgerLock = createDbClient(config.DATABASE_URL, { max: 1, applicationName: `tasklane-worker:${workerId}:purger` })
  const purger = createPurger({ sql: database.sql, db: database.db, lockSql: purgerLock.sql, config, registry, log })
  purger.start()
  // Without autovacuum, the churn of every task (not only the purge's deletes) is vacuumed here,
  // on a connection of its own: a churned table's indexes grow to the most entries they held
  // between two vacuums, so the vacuum must not wait in the pool's queue behind the tasks' own
  // queries, which under load made the gap between two vacuums of tasks many times its interval.
  const vacuumClient = createDbClient(config.DATABASE_URL, { max: 1, applicationName: `tasklane-worker:${workerId}:vacuum` })
  const vacuum = createTableVacuum({ sql: vacuumClient.sql, config, registry, log })
  vacuum.start()
  registerTableSizeMetrics({ registry, sql: database.sql, log })
  const admissionLock = createDbClient(config.DATABASE_URL, { max: 1, applicationName: `tasklane-worker:${workerId}:admission` })
  const admission = createAdmissionLoop({
    sql: database.sql, lockSql: admissionLock.sql, transitions, window: dispatchWindow, queues: producers, config, registry, log,
    subscriber: createRedisConnection(config.REDIS_URL, 'consumer', `tasklane-worker:${workerId}:admission`),
    limits: tenantLimits,
  })
  await admission.start()
  const ops = createOpsServer({ registry, readiness })
  const opsPort = await ops.listen(config.METRICS_PORT)
  log.info({ workerId, queues, opsPort }, 'worker started')

  let stopping: Promise<void> | undefined
  async function drainAndClose (graceMs: number): Promise<void> {
    readiness.startDraining()
    // BullMQ stops fetching at once; running jobs go on until they end or the grace is over.
    const closing = workers.close(false).then(() => 'drained' as const)
    await Promise.all([reconciler.stop(), scheduleLoop.stop(), purger.stop(), vacuum.stop(), notifications.stop(), admission.stop()])
    const drained = await Promise.race([closing, sleep(graceMs, 'timeout' as const, { ref: false })])
    if (drained === 'timeout') {
      log.warn({ graceMs }, 'grace period over; releasing the tasks still running')
      workers.releaseRunning()
      const released = await Promise.race([closing, sleep(RELEASE_WAIT_MS, 'timeout' as const, { ref: false })])
      if (released === 'timeout') {
        log.warn('some jobs were not handed back; their locks expire and the stalled check hands them over')
        workers.disconnect()
      }
    }
    await producers.close()
    await catalog.close()
    cancels.close()
    await ops.close()
    await handlers.close()
    await outbound.close()
    redis.disconnect()
    await Promise.all([database.close(), reconcilerLock.close(), purgerLock.close(), admissionLock.close(), vacuumClient.close()])
  }

  return {
    workerId,
    opsPort,
    registry,
    reconciler,
    purger,
    vacuum,
    admission,
    /** Idempotent: a second call (a second signal, a test teardown) waits for the first. */
    stop (graceMs = config.TASKLANE_SHUTDOWN_GRACE_MS): Promise<void> {
      stopping ??= drainAndClose(graceMs)
      return stopping
    },
  }
}
