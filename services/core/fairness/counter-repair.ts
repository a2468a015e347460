import { Counter, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { DispatchWindow } from './dispatch-window.ts'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'

/**
 * Corrects the dispatch counters from Postgres' truth: a tenant's dispatched tasks of a queue
 * are its unfinished tasks that are neither held nor waiting for a dependency. A process that died between a commit and its
 * counter update, or Redis keys that were lost, leave a counter off; a create or a finish in
 * flight while the pass reads makes it look off for a moment too. So only a drift seen in two
 * passes in a row, in the same direction, is corrected, and by the smaller of the two.
 */
export function createCounterRepair (deps: {
  sql: postgres.Sql
  window: Pick<DispatchWindow, 'counters' | 'adjust'>
  queues: Pick<QueueRegistry, 'names'>
  registry: Registry
  log: Logger
}) {
  const corrected = new Counter({
    name: 'tasklane_dispatch_repairs_total',
    help: 'Dispatch counters corrected from Postgres (a worker that died between a commit and its counter update, lost Redis keys)',
    labelNames: ['queue'] as const,
    registers: [deps.registry],
  })
  for (const queue of deps.queues.names()) corrected.inc({ queue }, 0)
  let previous = new Map<string, number>()

  return {
    /** Answers how many counters it corrected. */
    async runOnce (): Promise<number> {
      const queues = deps.queues.names()
      const truth = new Map<string, number>()
      const rows = await deps.sql<{ queue: string, tenant: string, count: number }[]>`
        select queue, tenant, count(*)::int as count from tasks
        where not held and blocked_count = 0 and status in ('queued', 'running') and queue = any(${queues}::text[])
        group by queue, tenant`
      for (const { queue, tenant, count } of rows) truth.set(`${queue}\n${tenant}`, count)
      const seen = new Map<string, number>()
      for (const queue of queues) {
        for (const [tenant, n] of await deps.window.counters(queue)) seen.set(`${queue}\n${tenant}`, n)
      }
      const drifts = new Map<string, number>()
      let fixed = 0
      for (const key of new Set([...truth.keys(), ...seen.keys()])) {
        const drift = (truth.get(key) ?? 0) - (seen.get(key) ?? 0)
        if (drift === 0) continue
        const before = previous.get(key) ?? 0
        if (Math.sign(before) !== Math.sign(drift)) { drifts.set(key, drift); continue }
        const delta = Math.abs(before) < Math.abs(drift) ? before : drift
        const [queue, tenant] = key.split('\n') as [string, string]
        await deps.window.adjust(queue, tenant, delta)
        corrected.inc({ queue })
        deps.log.info({ queue, tenant, delta }, 'dispatch counter corrected from Postgres')
        fixed++
      }
      previous = drifts
      return fixed
    },
  }
}
