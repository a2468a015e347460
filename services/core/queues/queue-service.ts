import { QueueNotFoundError } from '../errors.ts'
import { resolveQueueConcurrency } from './queue-defaults.ts'
import type { QueueRegistry } from './queue-registry.ts'

export const JOB_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'completed', 'failed'] as const
export type JobCounts = Record<(typeof JOB_STATES)[number], number>

export type QueueInfo = {
  name: string
  paused: boolean
  /** The global limit when one is set, else what each worker runs by default. */
  concurrency: number
  /** Worker connections BullMQ sees consuming this queue now. */
  workers: number
  counts: JobCounts
}

/** What operators see and steer of the BullMQ queues: counts, pause and resume. */
export function createQueueService (deps: { queues: Pick<QueueRegistry, 'names' | 'get' | 'has'> }) {
  const defaults = new Map(resolveQueueConcurrency([], deps.queues.names()).map((q) => [q.name, q.concurrency]))

  function queue (name: string) {
    if (!deps.queues.has(name)) throw new QueueNotFoundError(name)
    return deps.queues.get(name)
  }

  async function info (name: string): Promise<QueueInfo> {
    const q = queue(name)
    const [paused, counts, global, workers] = await Promise.all([
      q.isPaused(), q.getJobCounts(...JOB_STATES), q.getGlobalConcurrency(), q.getWorkersCount(),
    ])
    const full = Object.fromEntries(JOB_STATES.map((s) => [s, counts[s] ?? 0])) as JobCounts
    return { name, paused, concurrency: global ?? defaults.get(name) ?? 0, workers, counts: full }
  }

  return {
    info,
    /** Every queue, or the named ones that exist (a tenant sees the built-ins' and its own). */
    list: (names?: readonly string[]): Promise<QueueInfo[]> =>
      Promise.all((names ?? deps.queues.names()).filter((n) => deps.queues.has(n)).map(info)),
    /** Stops dispatch on every worker; jobs already running finish. */
    async pause (name: string): Promise<QueueInfo> {
      await queue(name).pause()
      return info(name)
    },
    async resume (name: string): Promise<QueueInfo> {
      await queue(name).resume()
      return info(name)
    },
  }
}

export type QueueService = ReturnType<typeof createQueueService>
