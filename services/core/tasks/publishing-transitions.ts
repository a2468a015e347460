import type { TaskEventPublisher } from './task-events.ts'
import type { TaskLifecycleRepository } from './task-lifecycle-repository.ts'
import { statusEventOf } from './task-status-event.ts'

/**
 * The worker's lifecycle repository, publishing every transition that took effect (and each
 * progress report) on the task's event channel, where any API replica's stream hears it.
 * Transitions that matched nothing publish nothing.
 *
 * The transition does not wait for its event: publishing never fails (it logs instead), the
 * events of one task keep their order on the one connection, and a Redis round trip before
 * every handler start and after every finish would only hold the worker's slots longer.
 */
export function withTaskEvents (lifecycle: TaskLifecycleRepository, events: Pick<TaskEventPublisher, 'publish'>): TaskLifecycleRepository {
  const now = () => new Date().toISOString()
  return {
    ...lifecycle,
    async start (taskId, workerId) {
      const row = await lifecycle.start(taskId, workerId)
      if (row) void events.publish(taskId, statusEventOf(row))
      return row
    },
    async finish (taskId, attempt, outcome, fields) {
      const done = await lifecycle.finish(taskId, attempt, outcome, fields)
      if (done) {
        const at = now()
        void events.publish(taskId, { kind: 'status', status: outcome, attempts: attempt, finishedAt: at, updatedAt: at })
      }
      return done
    },
    async scheduleRetry (taskId, attempt, fields) {
      const done = await lifecycle.scheduleRetry(taskId, attempt, fields)
      if (done) {
        void events.publish(taskId, {
          kind: 'status', status: 'queued', attempts: attempt, error: fields.error, runAt: fields.runAt.toISOString(), updatedAt: now(),
        })
      }
      return done
    },
    async finishCancelled (taskId, attempt, fields) {
      const row = await lifecycle.finishCancelled(taskId, attempt, fields)
      if (row) void events.publish(taskId, statusEventOf(row))
      return row
    },
    async settleCancelRequested (taskId) {
      const row = await lifecycle.settleCancelRequested(taskId)
      if (row) void events.publish(taskId, statusEventOf(row))
      return row
    },
    async setProgress (taskId, attempt, progress) {
      const done = await lifecycle.setProgress(taskId, attempt, progress)
      if (done) void events.publish(taskId, { kind: 'progress', progress, updatedAt: now() })
      return done
    },
  }
}
