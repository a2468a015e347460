import type { DependencyResults } from '../core/dependencies/dependency-repository.ts'
import type { Logger } from '../core/log.ts'

export type TaskContext<P = unknown> = {
  taskId: string
  attempt: number
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

/** An error that retrying cannot fix: the task fails at once, whatever attempts are left. */
export class PermanentTaskError extends Error {
  readonly code: string
  constructor (message: string, code = 'PERMANENT') {
    super(message)
    this.name = 'PermanentTaskError'
    this.code = code
  }
}

/** An error worth retrying, with a code clients can act on. */
export class RetryableTaskError extends Error {
  readonly code: string
  constructor (message: string, code = 'RETRYABLE') {
    super(message)
    this.name = 'RetryableTaskError'
    this.code = code
  }
}
