import type { TaskRow } from '../db/schema.ts'
import { retryDelayMs } from './backoff.ts'
import type { TaskError } from './task-view.ts'

// Which outcome a failed attempt means, decided once for every executor (the in-process
// runner, a pull worker's fail, a webhook's answer): retried with the task's backoff while
// attempts are left and the error may pass, failed otherwise.

/** An attempt that ran past the task's timeoutMs (or a pull lease past its deadline). */
export class TaskTimeoutError extends Error {
  readonly code = 'TIMEOUT'
  constructor (ms: number) {
    super(`the attempt did not finish within ${ms} ms`)
    this.name = 'TaskTimeoutError'
  }
}

/** The error stored on a task and its attempt: a message clients can read and a code they can act on. */
export function toTaskError (err: unknown): TaskError {
  const e = err as { message?: unknown, code?: unknown }
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err)
  const code = typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(e.code) ? e.code : 'ERROR'
  return { message: message.slice(0, 2_000), code }
}

export type FailureDecision =
  | { kind: 'retry', error: TaskError, delayMs: number, runAt: Date }
  | { kind: 'fail', error: TaskError }

/**
 * A failed attempt is retried when the error may pass (`retryable`) and the task has attempts
 * left; the delay is the task's backoff, or `retryAfterMs` when the executor asked for longer.
 */
export function decideFailure (task: Pick<TaskRow, 'attempts' | 'maxAttempts' | 'backoff'>, failure: {
  error: TaskError
  retryable: boolean
  retryAfterMs?: number
  now?: number
}): FailureDecision {
  if (!failure.retryable || task.attempts >= task.maxAttempts) return { kind: 'fail', error: failure.error }
  const delayMs = Math.max(retryDelayMs(task.backoff, task.attempts), failure.retryAfterMs ?? 0)
  return { kind: 'retry', error: failure.error, delayMs, runAt: new Date((failure.now ?? Date.now()) + delayMs) }
}

export type AttemptFailure = { error: TaskError, retryable: boolean, retryAfterMs?: number, durationMs: number, leaseId?: string | null }
export type FailOutcome = { outcome: 'retried', delayMs: number } | { outcome: 'failed' }

export type FailingTask = Pick<TaskRow, 'id' | 'attempts' | 'maxAttempts' | 'backoff'>
type FailWrites = {
  scheduleRetry: (taskId: string, attempt: number, fields: { error: TaskError, runAt: Date, durationMs: number, leaseId?: string | null }) => Promise<boolean>
  fail: (taskId: string, attempt: number, fields: { error: TaskError, durationMs: number, leaseId?: string | null }) => Promise<boolean>
}

/** failAttempt over a given pair of writes (the plain ones, or ones that also publish events). */
export function createFailAttempt (writes: FailWrites) {
  return async (task: FailingTask, failure: AttemptFailure): Promise<FailOutcome | undefined> => {
    const decision = decideFailure(task, failure)
    const { durationMs, leaseId } = failure
    if (decision.kind === 'retry') {
      const done = await writes.scheduleRetry(task.id, task.attempts, { error: decision.error, runAt: decision.runAt, durationMs, leaseId })
      return done ? { outcome: 'retried', delayMs: decision.delayMs } : undefined
    }
    return (await writes.fail(task.id, task.attempts, { error: decision.error, durationMs, leaseId })) ? { outcome: 'failed' } : undefined
  }
}
