import type { Redis } from 'ioredis'
import type { QueueRegistry } from './queue-registry.ts'

/**
 * What Redis knows of a task's job: `missing` (no job hash), `finished` (completed or failed,
 * so adding the id again would be a no-op), `locked` (a live worker holds it), `scheduled`
 * (in the prioritized or delayed set, where a worker will take it) or `pending` (unfinished,
 * unlocked and in neither set: waiting, active without a lock, which BullMQ's stalled check
 * takes care of, or in no list at all).
 */
export type JobPresence = 'missing' | 'finished' | 'locked' | 'scheduled' | 'pending'

/**
 * Looks up many jobs in one round trip: HMGET on each job hash, EXISTS on its lock key and
 * ZSCORE in the queue's prioritized and delayed sets, pipelined. Keys come from BullMQ's own
 * naming (prefix:queue:...), so a hash-tagged prefix keeps every key of a queue in one Redis
 * Cluster slot.
 */
export function createJobProbe (deps: { redis: Redis, queues: Pick<QueueRegistry, 'get'> }) {
  return async function probe (jobs: readonly { id: string, queue: string }[]): Promise<JobPresence[]> {
    if (jobs.length === 0) return []
    const pipeline = deps.redis.pipeline()
    for (const job of jobs) {
      const queue = deps.queues.get(job.queue)
      const key = queue.toKey(job.id)
      pipeline.hmget(key, 'timestamp', 'finishedOn')
      pipeline.exists(`${key}:lock`)
      pipeline.zscore(queue.keys.prioritized!, job.id)
      pipeline.zscore(queue.keys.delayed!, job.id)
    }
    const replies = await pipeline.exec()
    if (!replies) throw new Error('redis pipeline was not executed')
    for (const [err] of replies) if (err) throw err
    return jobs.map((_, i) => {
      const [timestamp, finishedOn] = replies[4 * i]![1] as (string | null)[]
      if (timestamp == null) return 'missing'
      if (finishedOn != null) return 'finished'
      if (replies[4 * i + 1]![1] === 1) return 'locked'
      return replies[4 * i + 2]![1] != null || replies[4 * i + 3]![1] != null ? 'scheduled' : 'pending'
    })
  }
}

export type JobProbe = ReturnType<typeof createJobProbe>
