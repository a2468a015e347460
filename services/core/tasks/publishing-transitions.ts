import type { TaskEventPublisher } from './task-events.ts'
import { statusEventOf } from './task-status-event.ts'
import { createFailAttempt, type TaskTransitions } from './transitions.ts'

/**
 * The transitions, publishing every one that took effect (and each progress report) on the
 * task's event channel, where any API replica's stream hears it. Transitions that matched
 * nothing publish nothing.
 *
 * The transition does not wait for its event: publishing never fails (it logs instead), the
 * events of one task keep their order on the one connection, and a Redis round trip before
 * every handler start and after every finish would only hold the worker's slots longer.
 */
export function withTaskEvents (transitions: TaskTransitions, events: Pick<TaskEventPublisher, 'publish'>): TaskTransitions {
  const now = () => new Date().toISOString()
  const finished = (taskId: string, status: 'completed' | 'failed', attempt: number) => {
    const at = now()
    void events.publish(taskId, { kind: 'status', status, attempts: attempt, finishedAt: at, updatedAt: at })
  }
  const wrapped: TaskTransitions = {
    ...transitions,
    async claim (input) {
      const claimed = await transitions.claim(input)
      if (claimed) void events.publish(input.taskId, statusEventOf(claimed.task))
      return claimed
    },
    async complete (taskId, attempt, fields) {
      const done = await transitions.complete(taskId, attempt, fields)
      if (done) finished(taskId, 'completed', attempt)
      return done
    },
    async fail (taskId, attempt, fields) {
      const done = await transitions.fail(taskId, attempt, fields)
      if (done) {
        const at = now()
        void events.publish(taskId, { kind: 'status', status: 'failed', attempts: attempt, error: fields.error, finishedAt: at, updatedAt: at })
      }
      return done
    },
    async scheduleRetry (taskId, attempt, fields) {
      const done = await transitions.scheduleRetry(taskId, attempt, fields)
      if (done) {
        void events.publish(taskId, {
          kind: 'status', status: 'queued', attempts: attempt, error: fields.error, runAt: fields.runAt.toISOString(), updatedAt: now(),
        })
      }
      return done
    },
    // failAttempt goes through the wrapped scheduleRetry and fail, so it publishes once.
    failAttempt: (task, failure) => createFailAttempt(wrapped)(task, failure),
    async finishCancelled (taskId, attempt, fields) {
      const row = await transitions.finishCancelled(taskId, attempt, fields)
      if (row) void events.publish(taskId, statusEventOf(row))
      return row
    },
    async settleCancelRequested (taskId) {
      const row = await transitions.settleCancelRequested(taskId)
      if (row) void events.publish(taskId, statusEventOf(row))
      return row
    },
    async setProgress (taskId, attempt, progress) {
      const done = await transitions.setProgress(taskId, attempt, progress)
      if (done) void events.publish(taskId, { kind: 'progress', progress, updatedAt: now() })
      return done
    },
  }
  return wrapped
}
