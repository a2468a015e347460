import type { Redis } from 'ioredis'
import { DependencyUnavailableError } from '../errors.ts'
import type { Logger } from '../log.ts'
import { taskEventsChannel } from './task-channels.ts'
import type { TaskEvent } from './task-events.ts'

export type TaskEventListener = (event: TaskEvent) => void

const SUBSCRIBE_TIMEOUT_MS = 2_000

/**
 * One subscriber connection per process, shared by every open event stream: a task's
 * channel is subscribed while at least one stream listens to it. The connection must be
 * dedicated (a subscribed connection can run nothing else) and should reconnect forever;
 * ioredis re-subscribes the open channels after a reconnect.
 */
export function createTaskEventHub (deps: { subscriber: Redis, prefix: string, log: Logger }) {
  const listeners = new Map<string, Set<TaskEventListener>>()
  const pending = new Map<string, Promise<void>>()
  const channelPrefix = taskEventsChannel(deps.prefix, '')

  deps.subscriber.on('message', (channel: string, message: string) => {
    if (!channel.startsWith(channelPrefix)) return
    const set = listeners.get(channel.slice(channelPrefix.length))
    if (!set) return
    let event: TaskEvent
    try {
      event = JSON.parse(message) as TaskEvent
    } catch (err) {
      deps.log.warn({ err, channel }, 'ignoring a task event that is not JSON')
      return
    }
    for (const listener of set) listener(event)
  })

  async function withTimeout (work: Promise<unknown>): Promise<void> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new DependencyUnavailableError('Redis')), SUBSCRIBE_TIMEOUT_MS)
    })
    try {
      await Promise.race([work, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  return {
    /** Listens to one task's events; resolves once subscribed, with the function that stops listening. */
    async subscribe (taskId: string, listener: TaskEventListener): Promise<() => void> {
      let set = listeners.get(taskId)
      const first = !set
      if (!set) {
        set = new Set()
        listeners.set(taskId, set)
      }
      set.add(listener)
      const unsubscribe = () => {
        const current = listeners.get(taskId)
        if (!current?.delete(listener) || current.size > 0) return
        listeners.delete(taskId)
        pending.delete(taskId)
        deps.subscriber.unsubscribe(taskEventsChannel(deps.prefix, taskId)).catch((err: unknown) =>
          deps.log.debug({ err, taskId }, 'unsubscribing from task events failed'))
      }
      // A second stream for the same task waits for the first one's SUBSCRIBE too.
      if (first) pending.set(taskId, withTimeout(deps.subscriber.subscribe(taskEventsChannel(deps.prefix, taskId))))
      try {
        await pending.get(taskId)
      } catch (err) {
        pending.delete(taskId)
        unsubscribe()
        throw err
      }
      return unsubscribe
    },
    /** How many tasks have at least one listener (for tests and diagnostics). */
    size: (): number => listeners.size,
    close: (): void => {
      listeners.clear()
      deps.subscriber.disconnect()
    },
  }
}

export type TaskEventHub = ReturnType<typeof createTaskEventHub>
