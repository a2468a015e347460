import type { Redis } from 'ioredis'
import type { QueueRegistry } from './queue-registry.ts'

/**
 * What Redis knows of a task's job: `missing` (no job hash), `finished` (completed or failed,
 * so adding the id again would be a no-op), `locked` (a live worker holds it) or `pending`
 * (waiting, delayed, or active without a lock, which BullMQ's stalled check takes care of).
 */
export type JobPresence = 'missing' | 'finished' | 'locked' | 'pending'

/**
 * Looks up many jobs in one round trip: HMGET on each job hash and EXISTS on its lock key,
 * pipelined. Keys come from BullMQ's own naming (prefix:queue:id), so a hash-tagged prefix
 * keeps every key of a queue in one Redis Cluster slot.
 */
export function createJobProbe (deps: { redis: Redis, queues: Pick<QueueRegistry, 'get'> }) {
  return async function probe (jobs: readonly { id: string, queue: string }[]): Promise<JobPresence[]> {
    if (jobs.length === 0) return []
    const pipeline = deps.redis.pipeline()
    for (const job of jobs) {
      const key = deps.queues.get(job.queue).toKey(job.id)
      pipeline.hmget(key, 'timestamp', 'finishedOn')
      pipeline.exists(`${key}:lock`)
    }
    const replies = await pipeline.exec()
    if (!replies) throw new Error('redis pipeline was not executed')
    return jobs.map((_, i) => {
      const [hashErr, fields] = replies[2 * i]!
      const [lockErr, locked] = replies[2 * i + 1]!
      if (hashErr) throw hashErr
      if (lockErr) throw lockErr
      const [timestamp, finishedOn] = fields as (string | null)[]
      if (timestamp == null) return 'missing'
      if (finishedOn != null) return 'finished'
      return locked === 1 ? 'locked' : 'pending'
    })
  }
}

export type JobProbe = ReturnType<typeof createJobProbe>
