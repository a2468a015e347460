import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import { jobOptions, type JobFields } from './job-options.ts'

export type JobData = Record<string, never>

export class RedisUnavailableError extends Error {
  readonly code = 'ECONNREFUSED'
  constructor (status: string) {
    super(`redis is not connected (${status})`)
    this.name = 'RedisUnavailableError'
  }
}

/** One BullMQ Queue per Tasklane queue name, sharing one producer connection. */
export function createQueueRegistry (deps: { connection: Redis, prefix: string, names: readonly string[], log: Logger }) {
  const queues = new Map<string, Queue<JobData>>()
  for (const name of deps.names) {
    const queue = new Queue<JobData>(name, { connection: deps.connection, prefix: deps.prefix })
    queue.on('error', (err) => deps.log.warn({ err, queue: name }, 'queue error'))
    queues.set(name, queue)
  }

  function get (name: string): Queue<JobData> {
    const queue = queues.get(name)
    if (!queue) throw new Error(`no queue named ${name}`)
    return queue
  }

  return {
    names: (): string[] => [...queues.keys()],
    get,
    has: (name: string): boolean => queues.has(name),
    /** Enqueues tasks grouped by queue, one round trip per queue. Job ids are task ids. */
    async enqueue (tasks: readonly (JobFields & { queue: string })[]): Promise<void> {
      // BullMQ waits for a connection that has never been ready instead of failing; a fail-fast
      // producer must not hold a request that long. Postgres has the task; the reconciler enqueues it.
      if (deps.connection.status !== 'ready') throw new RedisUnavailableError(deps.connection.status)
      const byQueue = new Map<string, (JobFields & { queue: string })[]>()
      for (const task of tasks) {
        const list = byQueue.get(task.queue) ?? []
        list.push(task)
        byQueue.set(task.queue, list)
      }
      const now = Date.now()
      await Promise.all([...byQueue].map(([name, list]) => {
        const queue = get(name)
        if (list.length === 1) {
          const task = list[0]!
          return queue.add(task.type, {}, jobOptions(task, now))
        }
        return queue.addBulk(list.map((task) => ({ name: task.type, data: {}, opts: jobOptions(task, now) })))
      }))
    },
    async close (): Promise<void> {
      await Promise.all([...queues.values()].map((q) => q.close()))
    },
  }
}

export type QueueRegistry = ReturnType<typeof createQueueRegistry>
