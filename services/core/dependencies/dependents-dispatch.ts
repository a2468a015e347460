import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import type { TaskEventPublisher } from '../tasks/task-events.ts'
import { statusEventOf } from '../tasks/task-status-event.ts'
import type { DependentsOutcome } from './dependency-transitions.ts'
import type { StoredAdmission } from '../fairness/stored-admission.ts'

export type DependentsDispatch = (outcome: DependentsOutcome) => Promise<void>

/**
 * What the process that ended a task does once that transaction has committed: enqueue the
 * dependents that became ready, and tell every touched dependent's stream. An enqueue that
 * fails here (or never happens because the process died) is the reconciler's: a ready
 * queued task without a job is what it repairs. Jobs are keyed by task id, so a dependent
 * enqueued by both is still dispatched once.
 */
export function createDependentsDispatch (deps: {
  queues: Pick<QueueRegistry, 'enqueue'>
  events: Pick<TaskEventPublisher, 'publish'>
  log: Logger
  /** Fair sharing: ready dependents take dispatch slots like created tasks, or wait held. */
  admitStored?: StoredAdmission
}): DependentsDispatch {
  return async function dispatch (outcome) {
    if (outcome.ready.length > 0 && deps.admitStored) {
      await deps.admitStored(outcome.ready)
    } else if (outcome.ready.length > 0) {
      try {
        await deps.queues.enqueue(outcome.ready)
      } catch (err) {
        deps.log.warn({ err, taskIds: outcome.ready.slice(0, 10).map((r) => r.id), count: outcome.ready.length },
          'enqueueing unblocked tasks failed; the reconciler will')
      }
    }
    const now = new Date().toISOString()
    for (const row of outcome.failed) void deps.events.publish(row.id, statusEventOf(row))
    for (const row of outcome.ready) void deps.events.publish(row.id, { kind: 'status', status: 'queued', blockedCount: 0, updatedAt: now })
    for (const { id, blockedCount } of outcome.waiting) void deps.events.publish(id, { kind: 'status', status: 'queued', blockedCount, updatedAt: now })
  }
}

export const NO_DEPENDENTS: DependentsOutcome = Object.freeze({ ready: [], waiting: [], failed: [] }) as unknown as DependentsOutcome

export const hasDependentChanges = (o: DependentsOutcome): boolean => o.ready.length + o.waiting.length + o.failed.length > 0
