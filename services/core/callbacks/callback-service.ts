import type { Logger } from '../log.ts'
import { AttemptEndedError, CallbackNotFoundError, CallbackTokenInvalidError } from '../errors.ts'
import { reportedError, resultEnding, retryOrFail } from '../leases/lease-endings.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import { retryOnOutage } from '../retry-on-outage.ts'
import type { TaskTypeCatalog } from '../task-types/task-type-catalog.ts'
import type { TaskRow } from '../db/schema.ts'
import type { CallbackLease, LeaseEnding } from '../tasks/lease-statements.ts'
import type { TaskEventPublisher } from '../tasks/task-events.ts'
import { statusEventOf } from '../tasks/task-status-event.ts'
import { toTaskView, type TaskView } from '../tasks/task-view.ts'
import type { TaskTransitions } from '../tasks/transitions.ts'
import { hashCallbackToken, isCallbackToken } from './callback-token.ts'

export type CallbackFail = { error: { message: string, code?: string | undefined }, retryable?: boolean | undefined, retryAfterMs?: number | undefined }

/**
 * The callbacks of webhook attempts a receiver answered 202: each token names one attempt's
 * lease, and every write goes through the lease transitions, fenced like a pull worker's, so
 * a callback after the attempt ended (or a second complete) records nothing and answers 409.
 */
export function createCallbackService (deps: {
  transitions: Pick<TaskTransitions, 'callbackLease' | 'endLease' | 'extendLease'>
  catalog: Pick<TaskTypeCatalog, 'validateResult'>
  queues: Pick<QueueRegistry, 'add' | 'enqueue'>
  events: Pick<TaskEventPublisher, 'publish'>
  log: Logger
  maxResultBytes: number
}) {
  async function leaseOf (token: string): Promise<CallbackLease> {
    if (!isCallbackToken(token)) throw new CallbackTokenInvalidError()
    const lease = await deps.transitions.callbackLease(hashCallbackToken(token))
    if (!lease) throw new CallbackNotFoundError()
    return lease
  }

  /**
   * The attempt's job finished when the receiver answered 202, so a retry needs a new one
   * (same id). Should this fail, the reconciler enqueues the queued task.
   */
  async function dispatchRetry (row: TaskRow): Promise<void> {
    if (row.status !== 'queued') return
    await retryOnOutage(async () => {
      await deps.queues.add(row.queue).remove(row.id)
      await deps.queues.enqueue([row])
    }).catch((err: unknown) => deps.log.warn({ err, taskId: row.id }, 'the retry of a webhook attempt could not be enqueued; the reconciler will'))
  }

  async function end (token: string, ending: (lease: CallbackLease) => LeaseEnding): Promise<TaskView> {
    const lease = await leaseOf(token)
    if (!lease.open) throw new AttemptEndedError()
    const row = await deps.transitions.endLease(lease.tenant, lease.leaseId, 'live', ending(lease))
    if (!row) throw new AttemptEndedError()
    void deps.events.publish(row.id, statusEventOf(row))
    await dispatchRetry(row)
    deps.log.info({ taskId: row.id, attempt: lease.attempt, status: row.status }, 'webhook attempt ended by its callback')
    return toTaskView(row)
  }

  /** Progress and heartbeats keep answering (cancelRequested) after a cancel, as a pull lease's do. */
  async function touch (token: string, progress: unknown): Promise<{ cancelRequested: boolean }> {
    const lease = await leaseOf(token)
    const touched = await deps.transitions.extendLease(lease.tenant, lease.leaseId, null, progress)
    if (!touched) throw new AttemptEndedError()
    if (progress !== undefined && !touched.cancelled) {
      void deps.events.publish(lease.taskId, { kind: 'progress', progress, updatedAt: new Date().toISOString() })
    }
    return { cancelRequested: touched.cancelled }
  }

  return {
    /** The result, checked like a pull worker's (result schema, TASKLANE_MAX_RESULT_BYTES). */
    complete: (token: string, result: unknown): Promise<TaskView> =>
      end(token, (lease) => resultEnding(deps.catalog, lease.tenant, lease.type, result, deps.maxResultBytes)),
    /** Retried with the task's backoff (or `retryAfterMs` when longer) while attempts are left and `retryable` is not false. */
    fail: (token: string, input: CallbackFail): Promise<TaskView> =>
      end(token, (lease) => retryOrFail(lease.attempt, lease.maxAttempts, lease.backoff, reportedError(input.error),
        input.retryable ?? true, 'failed', input.retryAfterMs)),
    progress: (token: string, progress: unknown) => touch(token, progress),
    heartbeat: (token: string) => touch(token, undefined),
  }
}

export type CallbackService = ReturnType<typeof createCallbackService>
