import type { Worker } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../core/log.ts'
import { cancelChannel } from '../core/tasks/task-channels.ts'

export const CANCEL_REASON = 'cancelled by a client'

/**
 * Hears cancel requests from any API replica and aborts the job if one of this process's
 * workers holds it: the handler's AbortSignal fires and the runner records `cancelled`.
 * Every worker process hears every request; the ones not running the task ignore it.
 */
export async function startCancelListener (deps: { subscriber: Redis, prefix: string, workers: readonly Worker[], log: Logger }) {
  const channel = cancelChannel(deps.prefix)
  deps.subscriber.on('message', (from: string, taskId: string) => {
    if (from !== channel) return
    const held = deps.workers.some((worker) => worker.cancelJob(taskId, CANCEL_REASON))
    if (held) deps.log.info({ taskId }, 'cancel requested; aborting the running attempt')
  })
  await deps.subscriber.subscribe(channel)
  return {
    close: (): void => { deps.subscriber.disconnect() },
  }
}
