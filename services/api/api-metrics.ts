import type { Redis } from 'ioredis'
import { Counter } from 'prom-client'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics/metrics-registry.ts'
import { registerQueueMetrics } from '../core/metrics/queue-metrics.ts'
import type { TaskTypeRegistry } from '../core/task-types/task-type-registry.ts'

/**
 * The API's registry: process defaults, queue gauges read at scrape time, the created-task
 * counter and (registered by the http-metrics plugin) request durations. Served on
 * METRICS_PORT by the metrics listener, never on the public port.
 */
export function createApiMetrics (deps: { redis: Redis, prefix: string, taskTypes: TaskTypeRegistry, log: Logger }) {
  const registry = createMetricsRegistry({ service: 'tasklane-api' })
  registerQueueMetrics({ registry, redis: deps.redis, prefix: deps.prefix, queues: deps.taskTypes.queues(), log: deps.log })
  const created = new Counter({
    name: 'tasklane_tasks_created_total',
    help: 'Tasks accepted and stored (idempotent replays are not counted)',
    labelNames: ['type', 'queue'] as const,
    registers: [registry],
  })
  // Every known series starts at 0, so rate() and ratios see the first task too.
  for (const type of deps.taskTypes.list()) created.inc({ type: type.name, queue: type.queue }, 0)
  const deferred = new Counter({
    name: 'tasklane_dispatch_deferred_total',
    help: 'Tasks stored held instead of dispatched, by reason (tenant_window, tenant_concurrency, dispatch_unavailable)',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
  })
  for (const queue of deps.taskTypes.queues()) for (const reason of ['tenant_window', 'tenant_concurrency']) deferred.inc({ queue, reason }, 0)

  return {
    registry,
    /** Hook for the task service: called with the rows it has just stored. */
    tasksCreated (tasks: readonly { type: string, queue: string }[]): void {
      for (const task of tasks) created.inc({ type: task.type, queue: task.queue })
    },
    /** Hook for fair sharing: tasks stored held. */
    tasksDeferred (queue: string, reason: string, count: number): void {
      deferred.inc({ queue, reason }, count)
    },
  }
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>
