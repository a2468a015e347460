import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import { createWriteBatcher } from '../write-batcher.ts'
import { jobOptions, type JobFields } from './job-options.ts'

export type JobData = Record<string, never>
type EnqueuedTask = JobFields & { queue: string }

export class RedisUnavailableError extends Error {
  readonly code = 'ECONNREFUSED'
  constructor (status: string) {
    super(`redis is not connected (${status})`)
    this.name = 'RedisUnavailableError'
  }
}

/**
 * One BullMQ Queue per Tasklane queue name, sharing one producer connection. The built-in
 * queues exist from the start; registered types' queues are added as they appear.
 */
export function createQueueRegistry (deps: { connection: Redis, prefix: string, names: readonly string[], log: Logger }) {
  const queues = new Map<string, Queue<JobData>>()

  function add (name: string): Queue<JobData> {
    let queue = queues.get(name)
    if (queue) return queue
    queue = new Queue<JobData>(name, { connection: deps.connection, prefix: deps.prefix })
    queue.on('error', (err) => deps.log.warn({ err, queue: name }, 'queue error'))
    queues.set(name, queue)
    return queue
  }
  for (const name of deps.names) add(name)

  function get (name: string): Queue<JobData> {
    const queue = queues.get(name)
    if (!queue) throw new Error(`no queue named ${name}`)
    return queue
  }

  async function addJobs (groups: (readonly EnqueuedTask[])[]): Promise<void[]> {
    const byQueue = new Map<string, EnqueuedTask[]>()
    for (const task of groups.flat()) {
      const list = byQueue.get(task.queue) ?? []
      list.push(task)
      byQueue.set(task.queue, list)
    }
    const now = Date.now()
    await Promise.all([...byQueue].map(([name, list]) => {
      const queue = get(name)
      // One job alone: a plain add, which skips addBulk's MULTI/EXEC.
      if (list.length === 1) return queue.add(list[0]!.type, {}, jobOptions(list[0]!, now))
      return queue.addBulk(list.map((task) => ({ name: task.type, data: {}, opts: jobOptions(task, now) })))
    }))
    return groups.map(() => undefined)
  }
  // One item per enqueue call, so a failed addBulk is retried per call and each caller hears its own outcome.
  const addTogether = createWriteBatcher({ run: addJobs, weight: (group) => group.length, maxBatch: 1_000 })

  return {
    names: (): string[] => [...queues.keys()],
    get,
    /** Makes a queue known (idempotent): a registered type's, when its type appears. */
    add,
    has: (name: string): boolean => queues.has(name),
    /**
     * Enqueues tasks, one addBulk per queue. Enqueues made while others are on the wire
     * (concurrent single creates) share the next addBulk. Job ids are task ids.
     */
    async enqueue (tasks: readonly EnqueuedTask[]): Promise<void> {
      // BullMQ waits for a connection that has never been ready instead of failing; a fail-fast
      // producer must not hold a request that long. Postgres has the task; the reconciler enqueues it.
      if (deps.connection.status !== 'ready') throw new RedisUnavailableError(deps.connection.status)
      if (tasks.length > 0) await addTogether(tasks)
    },
    async close (): Promise<void> {
      await Promise.all([...queues.values()].map((q) => q.close()))
    },
  }
}

export type QueueRegistry = ReturnType<typeof createQueueRegistry>
