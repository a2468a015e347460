import type { DependencyResults } from '../core/dependencies/dependency-repository.ts'
import type { Logger } from '../core/log.ts'

export type TaskContext<P = unknown> = {
  taskId: string
  attempt: number
  /** The attempts the task may make in all (this one included). */
  maxAttempts: number
  /** When this attempt times out: its start plus the task's timeoutMs. */
  deadline: Date
  payload: P
  /** The task's direct dependencies by id, with their results (empty for a task without any). */
  dependencies: DependencyResults
  /** Fires on timeout, on cancel, and when the worker gives the task up at shutdown. */
  signal: AbortSignal
  /** Records progress (0..100 or an object) on the task, visible to clients. */
  progress: (value: number | Record<string, unknown>) => Promise<void>
  log: Logger
}

/** Runs one attempt of a task; the value it returns is the task's result. Throw to retry. */
export type TaskHandler<P = unknown> = (ctx: TaskContext<P>) => Promise<unknown>

/**
 * What a handler returns when the attempt goes on outside this worker (a webhook receiver
 * answered 202 and calls back later): the runner records nothing and lets the job go; the
 * attempt's lease is ended by a callback or by the lease sweeper at the deadline.
 */
export const CONTINUES_ELSEWHERE = Symbol('the attempt continues outside this worker')

/** An error that retrying cannot fix: the task fails at once, whatever attempts are left. */
export class PermanentTaskError extends Error {
  readonly code: string
  constructor (message: string, code = 'PERMANENT') {
    super(message)
    this.name = 'PermanentTaskError'
    this.code = code
  }
}

/** An error worth retrying, with a code clients can act on; `retryAfterMs` asks for a longer wait than the backoff. */
export class RetryableTaskError extends Error {
  readonly code: string
  readonly retryAfterMs: number | undefined
  constructor (message: string, code = 'RETRYABLE', retryAfterMs?: number) {
    super(message)
    this.name = 'RetryableTaskError'
    this.code = code
    this.retryAfterMs = retryAfterMs
  }
}
