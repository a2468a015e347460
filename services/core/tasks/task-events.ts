import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import { cancelChannel, taskEventsChannel } from './task-channels.ts'
import type { TaskError, TaskStatus } from './task-view.ts'

/**
 * What changed on a task, as published on its channel. A status event carries the fields the
 * transition wrote, so a listener can patch the task it already holds; Postgres stays the
 * truth, and a stream re-reads it before its final event.
 */
export type TaskStatusEvent = {
  kind: 'status'
  status: TaskStatus
  attempts?: number
  error?: TaskError | null
  runAt?: string
  startedAt?: string | null
  finishedAt?: string | null
  updatedAt: string
  /** Set when a dependency of this task finished: how many it still waits for (the stream re-reads `blockedBy`). */
  blockedCount?: number
}
export type TaskProgressEvent = { kind: 'progress', progress: unknown, updatedAt: string }
export type TaskEvent = TaskStatusEvent | TaskProgressEvent

/**
 * Publishes task events and cancel requests. Publishing is best effort: a lost event never
 * fails a task (streams re-check Postgres on every heartbeat), so errors are only logged.
 * Use a fail-fast connection, so that a Redis outage does not hold the caller.
 */
export function createTaskEventPublisher (deps: { redis: Redis, prefix: string, log: Logger }) {
  async function publish (channel: string, message: string): Promise<number> {
    try {
      return await deps.redis.publish(channel, message)
    } catch (err) {
      deps.log.warn({ err, channel }, 'publishing a task event failed')
      return 0
    }
  }
  return {
    publish: (taskId: string, event: TaskEvent): Promise<number> =>
      publish(taskEventsChannel(deps.prefix, taskId), JSON.stringify(event)),
    /** Asks every worker to abort the task if it is running it; resolves with how many listened. */
    requestCancel: (taskId: string): Promise<number> => publish(cancelChannel(deps.prefix), taskId),
  }
}

export type TaskEventPublisher = ReturnType<typeof createTaskEventPublisher>
