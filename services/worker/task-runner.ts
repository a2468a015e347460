import { randomUUID } from 'node:crypto'
import { DelayedError, UnrecoverableError, type Job } from 'bullmq'
import { MAX_JSON_DEPTH, valueTooDeep } from '../core/json-depth.ts'
import type { Logger } from '../core/log.ts'
import { retryOnOutage } from '../core/retry-on-outage.ts'
import { TaskTimeoutError, toTaskError } from '../core/tasks/attempt-outcome.ts'
import { toStorable } from '../core/tasks/storable-json.ts'
import { assertResultFits, ResultTooLargeError } from '../core/tasks/result-limit.ts'
import type { DependencyResults } from '../core/dependencies/dependency-repository.ts'
import type { TaskTransitions } from '../core/tasks/transitions.ts'
import { CONTINUES_ELSEWHERE, PermanentTaskError, RetryableTaskError, type TaskHandler } from './task-handler.ts'

export type RunnerEvents = {
  started?: (task: { type: string, queue: string, runAt: Date }) => void
  finished?: (task: { type: string, queue: string }, outcome: 'completed' | 'failed' | 'retried' | 'cancelled', durationMs: number) => void
}

/** The abort reason of jobs a stopping worker gives back (see workers.ts `releaseRunning`). */
export const RELEASE_REASON = 'released: the worker is stopping'

/** How long a job whose type this worker cannot run waits before another worker may take it. */
const NO_HANDLER_DELAY_MS = 5_000

/** Thrown to BullMQ for a retry; the worker's backoff strategy reads the delay we recorded. */
export class RetryScheduled extends Error {
  readonly retryDelayMs: number
  constructor (message: string, retryDelayMs: number) {
    super(message)
    this.name = 'RetryScheduled'
    this.retryDelayMs = retryDelayMs
  }
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
 * The BullMQ processor: claims the task through the transitions, runs its handler with a
 * timeout and the job's abort signal, and hands the outcome back to the transitions, which
 * decide what it means. BullMQ owns the retry schedule; Postgres owns the record.
 * An outcome that a transition refused (the task moved on without this attempt: a duplicate
 * delivery, a late finish after the lock was lost) is neither logged as final nor counted.
 */
export function createTaskRunner (deps: {
  transitions: TaskTransitions
  handlers: Map<string, TaskHandler<unknown>>
  /** The executor of a job whose type is registered (a webhook type's), before the built-in handlers. */
  executorFor?: (job: Job) => TaskHandler<unknown> | undefined
  workerId: string
  log: Logger
  /** TASKLANE_MAX_RESULT_BYTES: a bigger result fails the attempt permanently. */
  maxResultBytes: number
  events?: RunnerEvents
  /** The results of each task's direct dependencies (see dependency-repository.ts). */
  dependencies?: (taskIds: readonly string[]) => Promise<Map<string, DependencyResults>>
  /** The payload as the handler needs it: sealed secret fields opened. */
  openPayload?: (payload: unknown) => unknown
}) {
  const { transitions, workerId } = deps

  /** Hands the job back to the queue (delayed), leaving the task as Postgres has it. */
  async function handBack (job: Job, token: string | undefined, delayMs: number, log: Logger): Promise<never> {
    try {
      await job.moveToDelayed(Date.now() + delayMs, token)
    } catch (err) {
      log.warn({ err }, 'could not hand the job back; the stalled check will')
    }
    throw new DelayedError()
  }

  return async function runTask (job: Job, token?: string, jobSignal?: AbortSignal): Promise<null> {
    const taskId = job.id!
    // Job names are task types. A type this worker has no handler for (a rolling deploy, a
    // worker built without it) goes back for a worker that has one; the task stays queued.
    const handler = deps.executorFor?.(job) ?? deps.handlers.get(job.name)
    if (!handler) {
      deps.log.warn({ taskId, type: job.name, queue: job.queueName }, 'no handler for this task type here; the job goes back to the queue')
      return handBack(job, token, NO_HANDLER_DELAY_MS, deps.log)
    }
    // One lease id per delivery: a claim repeated after an ambiguous commit finds its own attempt.
    const leaseId = randomUUID()
    const claim = await retryOnOutage(() => transitions.claim({ taskId, workerId, leaseId }))
    if (!claim) {
      // Terminal, cancelled or deleted: nothing to run. A cancel that no worker heard ends here.
      await retryOnOutage(() => transitions.settleCancelRequested(taskId))
      return null
    }
    const task = claim.task
    if (claim.outcome === 'worker_lost') {
      deps.log.warn({ taskId, type: task.type, queue: task.queue, lostAttempts: task.lostAttempts }, 'task failed: it lost its worker too often')
      deps.events?.finished?.(task, 'failed', 0)
      return null
    }
    const attempt = task.attempts
    // The attempt's child logger is built only when a line other than the completed outcome
    // is logged (a handler's own, a failure): one per attempt was a twentieth of the
    // worker's allocations. The outcome line carries the same fields.
    const fields = { taskId, type: task.type, queue: task.queue, attempt }
    let attemptLog: Logger | undefined
    const log = (): Logger => (attemptLog ??= deps.log.child(fields))
    deps.events?.started?.(task)

    // A timer cleared when the attempt ends: AbortSignal.timeout would keep every finished
    // attempt's signals alive until its timeout fires, tens of MB and tens of thousands of
    // pending timers at a thousand tasks a second with the default 30 s timeout. The job's
    // signal is forwarded into the same controller by a listener removed at the end, which
    // costs less per attempt than AbortSignal.any's composite signal.
    const attemptController = new AbortController()
    let timedOut = false
    const timeoutTimer = setTimeout(() => {
      timedOut = true
      attemptController.abort(new DOMException('signal timed out', 'TimeoutError'))
    }, task.timeoutMs).unref()
    const forwardJobAbort = () => attemptController.abort(jobSignal!.reason)
    if (jobSignal?.aborted) forwardJobAbort()
    else jobSignal?.addEventListener('abort', forwardJobAbort, { once: true })
    const signal = attemptController.signal
    const startedAt = performance.now()
    const elapsed = () => Math.round(performance.now() - startedAt)

    try {
      // Loaded after the claim: every dependency has finished by then, results included.
      const dependencies = task.dependencyCount > 0 && deps.dependencies
        ? (await retryOnOutage(() => deps.dependencies!([taskId]))).get(taskId) ?? {}
        : {}
      const work = handler({
        taskId, attempt, maxAttempts: task.maxAttempts, deadline: new Date((task.startedAt ?? new Date()).getTime() + task.timeoutMs), payload: deps.openPayload ? deps.openPayload(task.payload) : task.payload, dependencies, signal,
        get log () { return log() },
        progress: async (value) => { await transitions.setProgress(taskId, attempt, value) },
      })
      const value = await untilAborted(work, signal)
      if (value === CONTINUES_ELSEWHERE) {
        log().info({ durationMs: elapsed() }, 'attempt continues outside this worker')
        return null
      }
      // Checked without recursion before anything walks the result (toStorable, the driver).
      if (valueTooDeep(value)) throw new PermanentTaskError(`the result nests deeper than ${MAX_JSON_DEPTH} levels`, 'RESULT_TOO_DEEP')
      const result = toStorable(value)
      assertResultFits(result, deps.maxResultBytes)
      const durationMs = elapsed()
      if (await retryOnOutage(() => transitions.complete(taskId, attempt, { result, durationMs, hasDependents: task.hasDependents }))) {
        if (attemptLog) attemptLog.info({ outcome: 'completed', durationMs }, 'attempt finished')
        else deps.log.info({ ...fields, outcome: 'completed', durationMs }, 'attempt finished')
        deps.events?.finished?.(task, 'completed', durationMs)
      } else {
        log().info({ durationMs }, 'attempt finished after the task moved on; its result was not recorded')
      }
      return null
    } catch (caught) {
      const durationMs = elapsed()
      // The worker is stopping and its grace period is over: the task goes back to queued
      // and the job back to the queue at once, so another worker runs it without waiting
      // for this lock to expire. Delayed (by 0) rather than waiting: that wakes idle workers.
      if (jobSignal?.aborted && jobSignal.reason === RELEASE_REASON) {
        await retryOnOutage(() => transitions.release(taskId, attempt, durationMs))
        log().info({ outcome: 'released', durationMs }, 'attempt released at shutdown')
        return handBack(job, token, 0, log())
      }
      // The job's signal fires when a client cancels (see cancel-listener.ts); the task then
      // ends cancelled, never retried. The update checks the request really exists.
      if (jobSignal?.aborted && await retryOnOutage(() => transitions.finishCancelled(taskId, attempt, { durationMs }))) {
        log().info({ outcome: 'cancelled', durationMs }, 'attempt cancelled')
        deps.events?.finished?.(task, 'cancelled', durationMs)
        return null
      }
      const permanent = caught instanceof PermanentTaskError || caught instanceof ResultTooLargeError
      const err = timedOut && !permanent ? new TaskTimeoutError(task.timeoutMs) : caught
      const retryAfterMs = caught instanceof RetryableTaskError ? caught.retryAfterMs : undefined
      const failure = { error: toTaskError(err), retryable: !permanent, durationMs, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) }
      const decided = await retryOnOutage(() => transitions.failAttempt(task, failure))
      if (!decided) {
        log().info({ durationMs, err }, 'attempt failed after the task moved on; nothing was recorded')
        return null
      }
      deps.events?.finished?.(task, decided.outcome, durationMs)
      if (decided.outcome === 'retried') {
        log().warn({ outcome: 'retried', durationMs, err, retryInMs: decided.delayMs }, 'attempt failed; retry scheduled')
        throw new RetryScheduled(failure.error.message, decided.delayMs)
      }
      log().warn({ outcome: 'failed', durationMs, err }, 'attempt failed; task failed')
      throw new UnrecoverableError(failure.error.message)
    } finally {
      clearTimeout(timeoutTimer)
      jobSignal?.removeEventListener('abort', forwardJobAbort)
    }
  }
}
