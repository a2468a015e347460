import { UnrecoverableError, Worker, type Processor } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Config, QueueConcurrency } from '../core/config.ts'
import type { Logger } from '../core/log.ts'
import { RECORDED_BACKOFF } from '../core/queues/job-options.ts'
import { createRedisConnection } from '../core/queues/redis-connection.ts'
import { RELEASE_REASON, RetryScheduled } from './task-runner.ts'

// A worker that dies mid-task holds its jobs until its lock expires; the stalled check then
// hands them to another worker. TASKLANE_LOCK_DURATION_MS (default 15 s) and
// TASKLANE_STALLED_INTERVAL_MS (default 5 s): short enough to recover quickly, long enough
// that a busy event loop does not look dead.

/** One BullMQ Worker per consumed queue, each with its own blocking connection; queues can be added while running. */
export function createWorkers (deps: {
  config: Pick<Config, 'REDIS_URL' | 'TASKLANE_QUEUE_PREFIX' | 'TASKLANE_LOCK_DURATION_MS' | 'TASKLANE_STALLED_INTERVAL_MS'>
  queues: readonly QueueConcurrency[]
  processor: Processor
  log: Logger
  workerId: string
}) {
  const connections: Redis[] = []
  const workers: Worker[] = []
  let closed = false

  function start (name: string, concurrency: number): void {
    // Auto-pipelined: the job finishes (each also fetching the next job) and lock renewals of
    // the tasks running at once go to Redis in one write per turn instead of one each.
    const connection = createRedisConnection(deps.config.REDIS_URL, 'consumer', `tasklane-worker:${deps.workerId}:${name}`, { autoPipelining: true })
    connections.push(connection)
    const worker = new Worker(name, deps.processor, {
      connection,
      prefix: deps.config.TASKLANE_QUEUE_PREFIX,
      concurrency,
      lockDuration: deps.config.TASKLANE_LOCK_DURATION_MS,
      stalledInterval: deps.config.TASKLANE_STALLED_INTERVAL_MS,
      maxStalledCount: 5,
      settings: {
        backoffStrategy: (_attemptsMade, type, err) =>
          type === RECORDED_BACKOFF && err instanceof RetryScheduled ? err.retryDelayMs : 1_000,
      },
    })
    worker.on('error', (err) => deps.log.warn({ err, queue: name }, 'worker error'))
    worker.on('failed', (job, err) => {
      // Task failures are logged by the runner; anything else here is Tasklane's own fault.
      if (!(err instanceof RetryScheduled) && !(err instanceof UnrecoverableError)) {
        deps.log.error({ err, queue: name, taskId: job?.id }, 'processing a job failed outside its handler')
      }
    })
    workers.push(worker)
  }
  for (const { name, concurrency } of deps.queues) start(name, concurrency)

  return {
    /** Every Worker, those added later included (the array grows in place). */
    workers: workers as readonly Worker[],
    /**
     * Starts consuming a queue that appeared while the process runs (a registered webhook
     * type's); false when it is consumed already or the workers are closing.
     */
    add (name: string, concurrency: number): boolean {
      if (closed || workers.some((w) => w.name === name)) return false
      start(name, concurrency)
      return true
    },
    /** Aborts every running job with RELEASE_REASON: the runner hands each back to the queue. */
    releaseRunning (): void {
      for (const worker of workers) worker.cancelAllJobs(RELEASE_REASON)
    },
    /** Drops the connections without waiting for anything: the last step of a stop that ran out of time. */
    disconnect (): void {
      for (const connection of connections) connection.disconnect()
    },
    /** Stops taking jobs at once; waits for running ones unless `force`. */
    async close (force = false): Promise<void> {
      closed = true
      await Promise.all(workers.map((w) => w.close(force)))
      // BullMQ leaves a connection it was handed open; it is ours to close.
      for (const connection of connections) connection.disconnect()
    },
  }
}
