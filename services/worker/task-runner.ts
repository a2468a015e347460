import { DelayedError, UnrecoverableError, type Job } from 'bullmq'
import type { Logger } from '../core/log.ts'
import { retryOnOutage } from '../core/retry-on-outage.ts'
import { toStorable } from '../core/tasks/storable-json.ts'
import { retryDelayMs } from '../core/tasks/backoff.ts'
import type { DependencyResults } from '../core/dependencies/dependency-repository.ts'
import type { TaskLifecycleRepository } from '../core/tasks/task-lifecycle-repository.ts'
import type { TaskError } from '../core/tasks/task-view.ts'
import { PermanentTaskError, type TaskHandler } from './task-handler.ts'

export type RunnerEvents = {
  started?: (task: { type: string, queue: string, runAt: Date }) => void
  finished?: (task: { type: string, queue: string }, outcome: 'completed' | 'failed' | 'retried' | 'cancelled', durationMs: number) => void
}

/** The abort reason of jobs a stopping worker gives back (see workers.ts `releaseRunning`). */
export const RELEASE_REASON = 'released: the worker is stopping'

/** Thrown to BullMQ for a retry; the worker's backoff strategy reads the delay we recorded. */
export class RetryScheduled extends Error {
  readonly retryDelayMs: number
  constructor (message: string, retryDelayMs: number) {
    super(message)
    this.name = 'RetryScheduled'
    this.retryDelayMs = retryDelayMs
  }
}

class TaskTimeoutError extends Error {
  readonly code = 'TIMEOUT'
  constructor (ms: number) {
    super(`the attempt did not finish within ${ms} ms`)
    this.name = 'TaskTimeoutError'
  }
}

function toTaskError (err: unknown): TaskError {
  const e = err as { message?: unknown, code?: unknown, name?: unknown }
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err)
  const code = typeof e?.code === 'string' ? e.code : typeof e?.name === 'string' ? e.name : 'ERROR'
  return { message: message.slice(0, 2_000), code }
}

/** Resolves with the handler, or rejects as soon as the signal fires, even if the handler ignores it. */
function untilAborted<T> (work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason)
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason)
    signal.addEventListener('abort', onAbort, { once: true })
    work.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

/**
 * The BullMQ processor: claims the task in Postgres, runs its handler with a timeout and the
 * job's abort signal, and records the outcome. BullMQ owns the retry schedule; Postgres owns
 * the record of what happened.
 */
export function createTaskRunner (deps: {
  lifecycle: TaskLifecycleRepository
  handlers: Map<string, TaskHandler<unknown>>
  workerId: string
  log: Logger
  events?: RunnerEvents
  /** The results of each task's direct dependencies (see dependency-repository.ts). */
  dependencies?: (taskIds: readonly string[]) => Promise<Map<string, DependencyResults>>
  /** Puts a running task back to queued when its worker stops before the attempt ends. */
  release?: (taskId: string, attempt: number, durationMs: number) => Promise<boolean>
}) {
  const { lifecycle, workerId } = deps

  return async function runTask (job: Job, token?: string, jobSignal?: AbortSignal): Promise<null> {
    const taskId = job.id!
    const task = await retryOnOutage(() => lifecycle.start(taskId, workerId))
    if (!task) {
      // Terminal, cancelled or deleted: nothing to run. A cancel that no worker heard ends here.
      await retryOnOutage(() => lifecycle.settleCancelRequested(taskId))
      return null
    }
    const attempt = task.attempts
    const log = deps.log.child({ taskId, type: task.type, queue: task.queue, attempt })
    deps.events?.started?.(task)

    const handler = deps.handlers.get(task.type)
    // A timer cleared when the attempt ends: AbortSignal.timeout would keep every finished
    // attempt's signals alive until its timeout fires, tens of MB and tens of thousands of
    // pending timers at a thousand tasks a second with the default 30 s timeout.
    const timeoutController = new AbortController()
    const timeoutTimer = setTimeout(() => timeoutController.abort(new DOMException('signal timed out', 'TimeoutError')), task.timeoutMs).unref()
    const timeout = timeoutController.signal
    const signal = jobSignal ? AbortSignal.any([timeout, jobSignal]) : timeout
    const startedAt = performance.now()
    const elapsed = () => Math.round(performance.now() - startedAt)

    try {
      if (!handler) throw new PermanentTaskError(`this worker has no handler for task type "${task.type}"`, 'NO_HANDLER')
      // Loaded after the claim: every dependency has finished by then, results included.
      const dependencies = task.dependencyCount > 0 && deps.dependencies
        ? (await retryOnOutage(() => deps.dependencies!([taskId]))).get(taskId) ?? {}
        : {}
      const work = handler({
        taskId, attempt, payload: task.payload, dependencies, signal, log,
        progress: async (value) => { await lifecycle.setProgress(taskId, attempt, value) },
      })
      const result = toStorable(await untilAborted(work, signal))
      const durationMs = elapsed()
      await retryOnOutage(() => lifecycle.finish(taskId, attempt, 'completed', { result, durationMs }))
      log.info({ outcome: 'completed', durationMs }, 'attempt finished')
      deps.events?.finished?.(task, 'completed', durationMs)
      return null
    } catch (caught) {
      const durationMs = elapsed()
      // The worker is stopping and its grace period is over: the task goes back to queued
      // and the job back to the queue at once, so another worker runs it without waiting
      // for this lock to expire. Delayed (by 0) rather than waiting: that wakes idle workers.
      if (jobSignal?.aborted && jobSignal.reason === RELEASE_REASON && deps.release) {
        await retryOnOutage(() => deps.release!(taskId, attempt, durationMs))
        try {
          await job.moveToDelayed(Date.now(), token)
        } catch (err) {
          log.warn({ err }, 'could not hand the job back; the stalled check will')
        }
        log.info({ outcome: 'released', durationMs }, 'attempt released at shutdown')
        throw new DelayedError()
      }
      // The job's signal fires when a client cancels (see cancel-listener.ts); the task then
      // ends cancelled, never retried. The update checks the request really exists.
      if (jobSignal?.aborted && await retryOnOutage(() => lifecycle.finishCancelled(taskId, attempt, { durationMs }))) {
        log.info({ outcome: 'cancelled', durationMs }, 'attempt cancelled')
        deps.events?.finished?.(task, 'cancelled', durationMs)
        return null
      }
      const err = timeout.aborted && !(caught instanceof PermanentTaskError) ? new TaskTimeoutError(task.timeoutMs) : caught
      const error = toTaskError(err)
      if (!(err instanceof PermanentTaskError) && attempt < task.maxAttempts) {
        const delayMs = retryDelayMs(task.backoff, attempt)
        await retryOnOutage(() => lifecycle.scheduleRetry(taskId, attempt, { error, runAt: new Date(Date.now() + delayMs), durationMs }))
        log.warn({ outcome: 'retried', durationMs, err, retryInMs: delayMs }, 'attempt failed; retry scheduled')
        deps.events?.finished?.(task, 'retried', durationMs)
        throw new RetryScheduled(error.message, delayMs)
      }
      await retryOnOutage(() => lifecycle.finish(taskId, attempt, 'failed', { error, durationMs }))
      log.warn({ outcome: 'failed', durationMs, err }, 'attempt failed; task failed')
      deps.events?.finished?.(task, 'failed', durationMs)
      throw new UnrecoverableError(error.message)
    } finally {
      clearTimeout(timeoutTimer)
    }
  }
}
