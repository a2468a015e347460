import type { Job, Processor } from 'bullmq'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import type { QueueConcurrency } from '../core/config.ts'
import type { TaskTypeRegistry } from '../core/task-types/task-type-registry.ts'
import type { RunnerEvents } from './task-runner.ts'

export const OUTCOMES = ['completed', 'failed', 'retried', 'cancelled'] as const

// Handler run times range from an echo (sub-millisecond) to long HTTP calls and sleeps.
const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900]
// Waits range from an idle worker picking a task up at once to a backlog of an hour.
const WAIT_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900, 1800, 3600]

/**
 * The worker's task metrics. Outcomes arrive through the runner's events; active tasks are
 * counted around the processor, so a job that ends in an unexpected throw is still released.
 */
export function createWorkerMetrics (deps: { registry: Registry, taskTypes: TaskTypeRegistry, queues: readonly QueueConcurrency[] }) {
  const registers = [deps.registry]
  const finished = new Counter({
    name: 'tasklane_tasks_finished_total',
    help: 'Task attempts finished, by outcome (retried: failed with attempts left)',
    labelNames: ['type', 'queue', 'outcome'] as const,
    registers,
  })
  const duration = new Histogram({
    name: 'tasklane_task_duration_seconds',
    help: 'Handler run time of one attempt',
    labelNames: ['type', 'queue', 'outcome'] as const,
    buckets: DURATION_BUCKETS,
    registers,
  })
  const wait = new Histogram({
    name: 'tasklane_task_wait_seconds',
    help: 'Time from when an attempt was due (runAt, or creation) to its start',
    labelNames: ['type', 'queue'] as const,
    buckets: WAIT_BUCKETS,
    registers,
  })
  const active = new Gauge({
    name: 'tasklane_worker_active_tasks',
    help: 'Jobs this worker is processing now',
    labelNames: ['queue'] as const,
    registers,
  })
  const concurrency = new Gauge({
    name: 'tasklane_worker_concurrency',
    help: 'Jobs this worker may process at once',
    labelNames: ['queue'] as const,
    registers,
  })

  const consumed = new Set(deps.queues.map((q) => q.name))
  for (const { name, concurrency: limit } of deps.queues) {
    concurrency.set({ queue: name }, limit)
    active.set({ queue: name }, 0)
  }
  // Every series this worker can produce starts at 0, so rate() and ratios see the first task.
  for (const type of deps.taskTypes.list()) {
    if (!consumed.has(type.queue)) continue
    for (const outcome of OUTCOMES) finished.inc({ type: type.name, queue: type.queue, outcome }, 0)
  }

  const events: RunnerEvents = {
    started (task) {
      // The lifecycle repository may hand runAt over as the driver's string: read either.
      const due = new Date(task.runAt as Date | string).getTime()
      if (Number.isFinite(due)) wait.observe({ type: task.type, queue: task.queue }, Math.max(0, (Date.now() - due) / 1000))
    },
    finished (task, outcome, durationMs) {
      finished.inc({ type: task.type, queue: task.queue, outcome })
      duration.observe({ type: task.type, queue: task.queue, outcome }, durationMs / 1000)
    },
  }

  return {
    events,
    /** A queue this worker started consuming while it runs. */
    consuming (queue: string, limit: number): void {
      concurrency.set({ queue }, limit)
      active.set({ queue }, 0)
    },
    /** Wraps the BullMQ processor to count the jobs in progress per queue. */
    track<T> (processor: (job: Job, token?: string, signal?: AbortSignal) => Promise<T>): Processor {
      return async (job: Job, token?: string, signal?: AbortSignal) => {
        active.inc({ queue: job.queueName })
        try {
          return await processor(job, token, signal)
        } finally {
          active.dec({ queue: job.queueName })
        }
      }
    },
  }
}
