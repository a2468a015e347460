import type { Redis } from 'ioredis'
import { Gauge, type Registry } from 'prom-client'
import type { Logger } from '../log.ts'
import { readQueueSnapshots, type QueueSnapshot } from './queue-snapshot.ts'

export const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'paused'] as const

/**
 * The queue gauges, read from BullMQ when Prometheus scrapes. The three gauges' collect
 * callbacks run in the same pass of `registry.metrics()`, so they share one in-flight read:
 * one Redis round trip per scrape, and nothing is kept after it. When Redis does not answer,
 * the gauges are empty for that scrape rather than stale.
 *
 * BullMQ 6 has no separate paused list: a paused queue's jobs stay where they are. `paused`
 * therefore reports the ready jobs (waiting + prioritized) of a paused queue, and 0 otherwise;
 * it overlaps those two states rather than adding to them.
 *
 * `queues` is asked at every scrape: registered types add queues while the process runs.
 */
export function registerQueueMetrics (deps: { registry: Registry, redis: Redis, prefix: string, queues: () => readonly string[], log: Logger }) {
  let inFlight: Promise<QueueSnapshot[] | undefined> | undefined
  const read = (): Promise<QueueSnapshot[] | undefined> => {
    inFlight ??= readQueueSnapshots(deps.redis, deps.prefix, deps.queues())
      .catch((err: unknown) => {
        deps.log.warn({ err }, 'queue metrics unavailable: Redis did not answer')
        return undefined
      })
      .finally(() => { inFlight = undefined })
    return inFlight
  }

  new Gauge({
    name: 'tasklane_queue_jobs',
    help: 'BullMQ jobs per queue and state; paused counts the ready jobs of a paused queue',
    labelNames: ['queue', 'state'] as const,
    registers: [deps.registry],
    async collect () {
      const snapshots = await read()
      this.reset()
      for (const s of snapshots ?? []) {
        const ready = s.waiting + s.prioritized
        const values = { waiting: s.waiting, prioritized: s.prioritized, delayed: s.delayed, active: s.active, failed: s.failed, paused: s.paused ? ready : 0 }
        for (const state of QUEUE_STATES) this.set({ queue: s.queue, state }, values[state])
      }
    },
  })

  new Gauge({
    name: 'tasklane_queue_backlog',
    help: 'Tasks ready to run and not yet taken (waiting + prioritized); what autoscalers read',
    labelNames: ['queue'] as const,
    registers: [deps.registry],
    async collect () {
      const snapshots = await read()
      this.reset()
      for (const s of snapshots ?? []) this.set({ queue: s.queue }, s.waiting + s.prioritized)
    },
  })

  new Gauge({
    name: 'tasklane_queue_oldest_ready_seconds',
    help: 'Age of the oldest ready task (0 when none is ready)',
    labelNames: ['queue'] as const,
    registers: [deps.registry],
    async collect () {
      const snapshots = await read()
      this.reset()
      const now = Date.now()
      for (const s of snapshots ?? []) {
        const age = s.oldestReadySince === null ? 0 : Math.max(0, (now - s.oldestReadySince) / 1000)
        this.set({ queue: s.queue }, age)
      }
    },
  })

  new Gauge({
    name: 'tasklane_queue_paused',
    help: '1 while the queue is paused, else 0',
    labelNames: ['queue'] as const,
    registers: [deps.registry],
    async collect () {
      const snapshots = await read()
      this.reset()
      for (const s of snapshots ?? []) this.set({ queue: s.queue }, s.paused ? 1 : 0)
    },
  })
}
