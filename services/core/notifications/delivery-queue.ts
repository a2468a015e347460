import type { JobsOptions } from 'bullmq'

/**
 * The notification deliveries' own BullMQ queue, apart from every task queue (no task queue
 * name can start with an underscore): its workers, concurrency and backlog are separate, so
 * a slow or dead endpoint never holds a task's slot.
 */
export const DELIVERY_QUEUE = '__tasklane_notifications'
export const DELIVERY_BACKOFF = 'notification-schedule'

/** The Standard Webhooks schedule after the first try: about three days in all. */
export const DEFAULT_RETRY_DELAYS = '5s,5m,30m,2h,5h,10h,14h,20h,24h'

export type DeliveryJob = {
  /** The delivery's id: its webhook-id, the same on every retry. */
  deliveryId: string
  tenant: string
  taskId: string
  endpointId: string
  event: string
  /** The whole request body, fixed when the delivery was owed, so every retry sends the same event. */
  body: string
}

const UNITS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 }

/** "5s,5m,2h" as milliseconds; throws on an item that is not a number and a unit. */
export function parseRetryDelays (raw: string): number[] {
  return raw.split(',').map((item) => {
    const match = /^\s*(\d+)(ms|s|m|h|d)\s*$/.exec(item)
    if (!match) throw new Error(`"${item}" is not a duration such as 5s, 30m or 2h`)
    return Number(match[1]) * UNITS[match[2]!]!
  })
}

export function deliveryJobOptions (deliveryId: string, retryDelays: readonly number[]): JobsOptions {
  return {
    // The outbox row's id: a row handed over twice (a pass that died before deleting it) is one job.
    jobId: deliveryId,
    attempts: retryDelays.length + 1,
    backoff: { type: DELIVERY_BACKOFF },
    removeOnComplete: { age: 86_400, count: 10_000 },
    removeOnFail: { age: 7 * 86_400, count: 10_000 },
  }
}

/** The delay before retry number `attemptsMade` (1 after the first failure). */
export const retryDelayOf = (retryDelays: readonly number[], attemptsMade: number): number =>
  retryDelays[Math.min(attemptsMade, retryDelays.length) - 1] ?? 1_000
