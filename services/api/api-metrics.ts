import type { Redis } from 'ioredis'
import { Counter, Gauge } from 'prom-client'
import type { Logger } from '../core/log.ts'
import { createMetricsRegistry } from '../core/metrics/metrics-registry.ts'
import { registerQueueMetrics } from '../core/metrics/queue-metrics.ts'
import type { TaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import { createDeferredCounter } from '../core/fairness/deferred-metric.ts'

/**
 * The API's registry: process defaults, queue gauges read at scrape time, the created-task
 * counter and (registered by the http-metrics plugin) request durations. Served on
 * METRICS_PORT by the metrics listener, never on the public port.
 */
export function createApiMetrics (deps: { redis: Redis, prefix: string, taskTypes: TaskTypeRegistry, queues: () => readonly string[], log: Logger }) {
  const registry = createMetricsRegistry({ service: 'tasklane-api' })
  registerQueueMetrics({ registry, redis: deps.redis, prefix: deps.prefix, queues: deps.queues, log: deps.log })
  const created = new Counter({
    name: 'tasklane_tasks_created_total',
    help: 'Tasks accepted and stored (idempotent replays are not counted)',
    labelNames: ['type', 'queue'] as const,
    registers: [registry],
  })
  // Every known series starts at 0, so rate() and ratios see the first task too.
  for (const type of deps.taskTypes.list()) created.inc({ type: type.name, queue: type.queue }, 0)
  const deferred = createDeferredCounter(registry, deps.taskTypes.queues())

  // Event streams: what they hold, and why they end or are refused.
  let streamBytes = (): number => 0
  let streamCount = (): number => 0
  new Gauge({
    name: 'tasklane_sse_streams',
    help: 'Task event streams open in this process',
    registers: [registry],
    collect () { this.set(streamCount()) },
  })
  new Gauge({
    name: 'tasklane_sse_buffered_bytes',
    help: 'Bytes of event frames written but not yet taken by the clients\' connections, over every open stream',
    registers: [registry],
    collect () { this.set(streamBytes()) },
  })
  const streamsClosed = new Counter({
    name: 'tasklane_sse_streams_closed_total',
    help: 'Task event streams ended, by reason (slow: the client fell behind and the stream was cut)',
    labelNames: ['reason'] as const,
    registers: [registry],
  })
  const streamsRefused = new Counter({
    name: 'tasklane_sse_streams_refused_total',
    help: 'Task event streams refused at a cap (tenant: 429, process: 503)',
    labelNames: ['limit'] as const,
    registers: [registry],
  })
  const clientErrors = new Counter({
    name: 'tasklane_http_client_failures_total',
    help: 'Answers that count against a client address\'s failure budget (401 and 404), and the 429s when it is spent',
    labelNames: ['status'] as const,
    registers: [registry],
  })

  return {
    registry,
    streams: {
      /** Where the gauges read the open streams from (the event stream routes). */
      observe (source: { count: () => number, bufferedBytes: () => number }): void {
        streamCount = source.count
        streamBytes = source.bufferedBytes
      },
      closed: (reason: 'ended' | 'client' | 'slow' | 'shutdown' | 'error'): void => { streamsClosed.inc({ reason }) },
      refused: (limit: 'tenant' | 'process'): void => { streamsRefused.inc({ limit }) },
    },
    /** A 401 or 404 counted against its client address, or a 429 once the address is over its budget. */
    clientFailure: (status: number): void => { clientErrors.inc({ status: String(status) }) },
    /** Hook for the task service: called with the rows it has just stored. */
    tasksCreated (tasks: readonly { type: string, queue: string }[]): void {
      for (const task of tasks) created.inc({ type: task.type, queue: task.queue })
    },
    /** Fair sharing: tasks stored held. */
    tasksDeferred: deferred,
  }
}

export type ApiMetrics = ReturnType<typeof createApiMetrics>
