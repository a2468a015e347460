import { hostname } from 'node:os'
import type { Config } from '../core/config.ts'
import { createDbClient } from '../core/db/db-client.ts'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics/metrics-registry.ts'
import { registerQueueMetrics } from '../core/metrics/queue-metrics.ts'
import { resolveQueueConcurrency } from '../core/queues/queue-defaults.ts'
import { createRedisConnection } from '../core/queues/redis-connection.ts'
import { createReadiness } from '../core/readiness.ts'
import { builtinTaskTypes } from '../core/task-types/builtin-types.ts'
import { createTaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import { createTaskLifecycleRepository } from '../core/tasks/task-lifecycle-repository.ts'
import { withTaskEvents } from '../core/tasks/publishing-lifecycle.ts'
import { createTaskEventPublisher } from '../core/tasks/task-events.ts'
import { startCancelListener } from './cancel-listener.ts'
import { createHandlers } from './handlers/index.ts'
import { createOpsServer } from './ops-server.ts'
import { createTaskRunner } from './task-runner.ts'
import { createWorkerMetrics } from './worker-metrics.ts'
import { createWorkers } from './workers.ts'

/** Opens connections and starts consuming; `stop` drains within the grace period, then closes. */
export async function startWorker (config: Config, log: Logger) {
  const workerId = config.TASKLANE_WORKER_ID || `${hostname()}-${process.pid}`
  const taskTypes = createTaskTypeRegistry(builtinTaskTypes)
  const queues = resolveQueueConcurrency(config.queues, taskTypes.queues())
  const database = createDbClient(config.DATABASE_URL, {
    max: config.TASKLANE_DB_POOL_SIZE, applicationName: `tasklane-worker:${workerId}`,
  })
  // Readiness pings through a fail-fast connection: the workers' own connections queue
  // commands while Redis is away and would make the probe hang instead of answering.
  const redis = createRedisConnection(config.REDIS_URL, 'producer', `tasklane-worker:${workerId}:ops`)
  redis.on('error', (err) => log.debug({ err }, 'redis ops connection error'))
  const readiness = createReadiness({ sql: database.sql, redis })
  const registry = createMetricsRegistry({ service: 'tasklane-worker' })
  registerQueueMetrics({ registry, redis, prefix: config.TASKLANE_QUEUE_PREFIX, queues: taskTypes.queues(), log })
  const metrics = createWorkerMetrics({ registry, taskTypes, queues })
  const handlers = createHandlers(config)
  const taskEvents = createTaskEventPublisher({ redis, prefix: config.TASKLANE_QUEUE_PREFIX, log })
  const runner = createTaskRunner({
    lifecycle: withTaskEvents(createTaskLifecycleRepository(database.sql), taskEvents), handlers: handlers.handlers, workerId, log,
    events: metrics.events,
  })
  const workers = createWorkers({ config, queues, processor: metrics.track(runner), log, workerId })
  const cancels = await startCancelListener({
    subscriber: createRedisConnection(config.REDIS_URL, 'consumer', `tasklane-worker:${workerId}:cancel`),
    prefix: config.TASKLANE_QUEUE_PREFIX, workers: workers.workers, log,
  })
  const ops = createOpsServer({ registry, readiness })
  const opsPort = await ops.listen(config.METRICS_PORT)
  log.info({ workerId, queues, opsPort }, 'worker started')

  return {
    workerId,
    opsPort,
    registry,
    async stop (graceMs = config.TASKLANE_SHUTDOWN_GRACE_MS): Promise<void> {
      readiness.startDraining()
      let timer: NodeJS.Timeout | undefined
      const deadline = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), graceMs) })
      const drained = await Promise.race([workers.close(false).then(() => 'drained' as const), deadline])
      clearTimeout(timer)
      if (drained === 'timeout') {
        log.warn({ graceMs }, 'grace period over; releasing the tasks still running')
        await workers.close(true)
      }
      cancels.close()
      await ops.close()
      await handlers.close()
      redis.disconnect()
      await database.close()
    },
  }
}
