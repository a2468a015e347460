import type { Redis } from 'ioredis'
import { Counter, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Config } from '../config.ts'
import { createPassLoop } from '../pass-loop.ts'
import type { DispatchWindow } from './dispatch-window.ts'
import { limitsChannel, type TenantLimitsService } from '../tenants/tenant-limits-service.ts'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import type { TaskTransitions, UnfinishedTask } from '../tasks/transitions.ts'
import { createCounterRepair } from './counter-repair.ts'

// Any constant works, as long as every replica uses it and it differs from the other loops'.
export const ADMISSION_LOCK_KEY = 7_325_811_906_115n

/** Held tasks one tenant may get per queue in one pass; a pass that hits it runs again at once. */
const PER_TENANT_PER_PASS = 500
/** How often (in passes) the counters are checked against Postgres. */
const REPAIR_EVERY_MS = 5_000

export type AdmissionReport = { active: boolean, admitted: number, repaired: number }

/**
 * Dispatches held tasks as their tenants' windows free up. Each pass, per queue with held
 * tasks: every tenant takes the slots it has free (the same script as the create path), gets
 * that many of its held tasks in priority then age order, and the whole set is enqueued in
 * turns across tenants. Woken every interval, and at once when a tenant with held tasks frees
 * slots (a Redis message). One replica acts at a time (an advisory lock, as the reconciler).
 */
export function createAdmissionLoop (deps: {
  sql: postgres.Sql
  /** A client of exactly one connection, the loop's own: it holds the advisory lock. */
  lockSql: postgres.Sql
  /** A connection for subscribing only. */
  subscriber: Redis
  transitions: Pick<TaskTransitions, 'admit'>
  window: DispatchWindow
  limits: Pick<TenantLimitsService, 'cap' | 'forget'>
  queues: Pick<QueueRegistry, 'enqueue' | 'has' | 'names'>
  config: Pick<Config, 'TASKLANE_ADMISSION_INTERVAL_MS' | 'TASKLANE_QUEUE_PREFIX'>
  registry: Registry
  log: Logger
}) {
  const { config, log } = deps
  const admittedTotal = new Counter({
    name: 'tasklane_admission_admitted_total',
    help: 'Held tasks the admission loop dispatched, by queue',
    labelNames: ['queue'] as const,
    registers: [deps.registry],
  })
  for (const queue of deps.queues.names()) admittedTotal.inc({ queue }, 0)
  const repair = createCounterRepair({ sql: deps.sql, window: deps.window, queues: deps.queues, registry: deps.registry, log })
  let lastRepair = 0

  // The (queue, tenant) pairs with held tasks, found by skipping through the held index (one
  // probe per pair, not a scan of a flood's backlog), each with its due held tasks counted up
  // to what one pass takes.
  async function heldByQueue (): Promise<Map<string, Map<string, number>>> {
    const rows = await deps.sql<{ queue: string, tenant: string, count: number }[]>`
      with recursive pairs as (
        (select queue, tenant from tasks where held and status = 'queued' order by queue, tenant limit 1)
        union all
        select next.queue, next.tenant from pairs p cross join lateral (
          select queue, tenant from tasks
          where held and status = 'queued' and (queue, tenant) > (p.queue, p.tenant)
          order by queue, tenant limit 1
        ) next
      )
      select p.queue, p.tenant, (
        select count(*)::int from (
          select 1 from tasks t
          where t.held and t.status = 'queued' and t.queue = p.queue and t.tenant = p.tenant and t.run_at <= now() + interval '1 second'
          limit ${PER_TENANT_PER_PASS}
        ) due
      ) as count
      from pairs p`
    const byQueue = new Map<string, Map<string, number>>()
    for (const { queue, tenant, count } of rows) {
      if (!deps.queues.has(queue)) continue
      const tenants = byQueue.get(queue) ?? new Map<string, number>()
      tenants.set(tenant, count)
      byQueue.set(queue, tenants)
    }
    return byQueue
  }

  /**
   * The admitted tasks in turns (each tenant's first, then each one's second, and so on), each
   * with its slot number, which orders the jobs of one priority across tenants.
   */
  function inTurns (tasks: (UnfinishedTask & { tenant: string })[], firstSlot: Map<string, number>): (UnfinishedTask & { slot: number })[] {
    const byTenant = new Map<string, (UnfinishedTask & { slot: number })[]>()
    for (const task of tasks) {
      const list = byTenant.get(task.tenant) ?? []
      list.push({ ...task, slot: (firstSlot.get(task.tenant) ?? 0) + list.length })
      byTenant.set(task.tenant, list)
    }
    const lists = [...byTenant.values()]
    const turns: (UnfinishedTask & { slot: number })[] = []
    for (let i = 0; turns.length < tasks.length; i++) for (const list of lists) if (list[i]) turns.push(list[i]!)
    return turns
  }

  async function admitQueue (queue: string, held: Map<string, number>): Promise<{ admitted: number, full: boolean }> {
    const quota = new Map<string, number>()
    const firstSlot = new Map<string, number>()
    let full = false
    // A tenant whose lookup fails gets nothing this pass; the others go on.
    await Promise.all([...held].map(async ([tenant, count]) => {
      try {
        const limit = await deps.limits.cap(tenant, queue)
        const { granted, first } = await deps.window.reserve(queue, tenant, Math.min(count, PER_TENANT_PER_PASS), limit, false)
        if (granted > 0) quota.set(tenant, granted)
        firstSlot.set(tenant, first)
        if (granted === PER_TENANT_PER_PASS) full = true
      } catch (err) {
        log.warn({ err, queue }, 'could not reserve dispatch slots for a tenant; trying again next pass')
      }
    }))
    let admitted: (UnfinishedTask & { tenant: string })[] = []
    try {
      admitted = await deps.transitions.admit(queue, quota)
    } finally {
      // Slots reserved beyond what was admitted (a task cancelled meanwhile) go back.
      const got = new Map<string, number>()
      for (const task of admitted) got.set(task.tenant, (got.get(task.tenant) ?? 0) + 1)
      const unused = [...quota].flatMap(([tenant, n]) => Array.from({ length: n - (got.get(tenant) ?? 0) }, () => ({ tenant, queue })))
      await deps.window.release(unused)
      // A count at the pass's cap may hide more held tasks behind it.
      const stillHeld = [...held].filter(([tenant, count]) => count > (got.get(tenant) ?? 0) || count >= PER_TENANT_PER_PASS).map(([tenant]) => tenant)
      const drained = [...held.keys()].filter((tenant) => !stillHeld.includes(tenant))
      const stale = (await deps.window.heldFlags(queue)).filter((tenant) => !held.has(tenant))
      await deps.window.setHeldFlags(queue, stillHeld, [...drained, ...stale])
    }
    if (admitted.length > 0) {
      try {
        await deps.queues.enqueue(inTurns(admitted, firstSlot))
      } catch (err) {
        // Queued, not held, no job: the reconciler enqueues them.
        log.warn({ err, queue, count: admitted.length }, 'enqueue of admitted tasks failed; the reconciler will enqueue them')
      }
      admittedTotal.inc({ queue }, admitted.length)
    }
    return { admitted: admitted.length, full }
  }

  /** Flags of tenants in queues with no held task at all are cleared too. */
  async function clearIdleQueues (busy: Set<string>): Promise<void> {
    for (const queue of deps.queues.names()) {
      if (busy.has(queue)) continue
      const stale = await deps.window.heldFlags(queue)
      if (stale.length > 0) await deps.window.setHeldFlags(queue, [], stale)
    }
  }

  /** One pass: what it admitted, and `again` when more held work is ready now. */
  async function pass (): Promise<AdmissionReport & { again: boolean }> {
    const report = { active: true, admitted: 0, repaired: 0, again: false }
    const held = await heldByQueue()
    for (const [queue, tenants] of held) {
      const { admitted, full } = await admitQueue(queue, tenants)
      report.admitted += admitted
      report.again ||= full
    }
    await clearIdleQueues(new Set(held.keys()))
    if (Date.now() - lastRepair >= REPAIR_EVERY_MS) {
      lastRepair = Date.now()
      report.repaired = await repair.runOnce()
    }
    return report
  }

  const loop = createPassLoop({
    name: 'admission',
    what: 'Admission loop passes',
    intervalMs: config.TASKLANE_ADMISSION_INTERVAL_MS,
    nextDelayMs: (report) => report.again ? 0 : config.TASKLANE_ADMISSION_INTERVAL_MS,
    lock: { sql: deps.lockSql, key: ADMISSION_LOCK_KEY },
    pass,
    passed: (report) => log.debug({ admitted: report.admitted, repaired: report.repaired }, 'admission pass'),
    registry: deps.registry,
    log,
  })

  const signal = deps.window.keys.signal
  const limits = limitsChannel(config.TASKLANE_QUEUE_PREFIX)
  deps.subscriber.on('message', (channel: string, message: string) => {
    if (channel === limits) {
      deps.limits.forget(message)
      loop.wake()
    } else if (channel === signal) {
      loop.wake()
    }
  })

  let started = false
  return {
    /** One pass, if no other replica is in one (`active: false` when another was). */
    async runOnce (): Promise<AdmissionReport & { again: boolean }> {
      return (await loop.runOnce()) ?? { active: false, admitted: 0, repaired: 0, again: false }
    },
    /** Subscribes to the wake-up signal and starts passes (an interval of 0 leaves the loop off). */
    async start (): Promise<void> {
      if (config.TASKLANE_ADMISSION_INTERVAL_MS === 0 || started) return
      started = true
      await deps.subscriber.subscribe(signal, limits)
      loop.start()
    },
    async stop (): Promise<void> {
      await loop.stop()
      deps.subscriber.disconnect()
    },
  }
}

export type AdmissionLoop = ReturnType<typeof createAdmissionLoop>
