import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'

export type RawBullmqResult = {
  jobs: number
  concurrency: number
  addPerSec: number
  drainPerSec: number
  /** CPU of the draining process and of Redis while draining, per 1,000 jobs. */
  cpuSecPer1kJobs: { worker: number, redis: number }
}

async function redisCpu (redis: Redis): Promise<number> {
  const info = await redis.info('cpu')
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0)
  return field('used_cpu_sys') + field('used_cpu_user')
}

/**
 * The ceiling Tasklane is measured against: plain BullMQ on the same Redis, no HTTP and no
 * Postgres. Bulk-adds `jobs` jobs (1,000 per addBulk), then one Worker with a no-op processor
 * drains them. Jobs use Tasklane's removal policy so Redis does the same trimming work.
 */
export async function runRawBullmq (options: { redisUrl: string, prefix: string, jobs: number, concurrency: number }): Promise<RawBullmqResult> {
  const producer = new Redis(options.redisUrl, { connectionName: 'tasklane-bench-raw-producer', maxRetriesPerRequest: 3 })
  const consumer = new Redis(options.redisUrl, { connectionName: 'tasklane-bench-raw-consumer', maxRetriesPerRequest: null })
  const queue = new Queue('raw', { connection: producer, prefix: options.prefix })
  queue.on('error', () => {})
  try {
    const opts = { removeOnComplete: { age: 3_600, count: 1_000 }, removeOnFail: { age: 86_400, count: 5_000 } }
    const addStart = performance.now()
    for (let added = 0; added < options.jobs; added += 1_000) {
      const n = Math.min(1_000, options.jobs - added)
      await queue.addBulk(Array.from({ length: n }, (_, i) => ({ name: 'noop', data: { i: added + i }, opts })))
    }
    const addSec = (performance.now() - addStart) / 1000

    let done = 0
    let drainStart = 0
    const finished = Promise.withResolvers<void>()
    const worker = new Worker('raw', async () => null, {
      connection: consumer, prefix: options.prefix, concurrency: options.concurrency, autorun: false,
    })
    worker.on('error', () => {})
    worker.on('completed', () => { if (++done === options.jobs) finished.resolve() })
    const redisBefore = await redisCpu(producer)
    const cpuBefore = process.cpuUsage()
    drainStart = performance.now()
    void worker.run()
    await finished.promise
    const drainSec = (performance.now() - drainStart) / 1000
    const cpu = process.cpuUsage(cpuBefore)
    const redisSec = (await redisCpu(producer)) - redisBefore
    const per1k = (seconds: number) => Math.round((seconds / options.jobs) * 1000 * 1000) / 1000
    await worker.close()
    return {
      jobs: options.jobs,
      concurrency: options.concurrency,
      addPerSec: Math.round(options.jobs / addSec),
      drainPerSec: Math.round(options.jobs / drainSec),
      cpuSecPer1kJobs: { worker: per1k((cpu.user + cpu.system) / 1e6), redis: per1k(redisSec) },
    }
  } finally {
    await queue.close()
    producer.disconnect()
    consumer.disconnect()
  }
}
