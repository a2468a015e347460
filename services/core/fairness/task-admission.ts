import type { Logger } from '../log.ts'
import type { DispatchedTask, DispatchWindow } from './dispatch-window.ts'
import type { DispatchCap, TenantLimitsService } from '../tenants/tenant-limits-service.ts'

export type DeferredReason = DispatchCap['reason'] | 'dispatch_unavailable'
export type FairnessDeps = {
  window: Pick<DispatchWindow, 'reserve' | 'release'>
  limits: Pick<TenantLimitsService, 'cap'>
  log: Logger
  /** Counts tasks stored held instead of dispatched. */
  deferred?: (queue: string, reason: DeferredReason, count: number) => void
}

/** What a task needs to take a slot: it is marked held when it gets none. */
export type AdmittedRow = { id: string, queue: string, held?: boolean | undefined }

/** Slots reserved for new tasks: `settle` after the insert says which of them were stored. */
export type Reservation<T extends AdmittedRow> = {
  /** The tasks, each marked held unless it got a slot. */
  rows: T[]
  /** The slot number of each row that got one. */
  slots: Map<string, number>
  /** Frees the slots of rows that were not stored (an idempotent replay, a failed insert) and counts the held ones. */
  settle: (stored: readonly { id: string }[]) => Promise<void>
}

/**
 * The create path's side of fair sharing: before new tasks are inserted, each queue's share
 * of them takes slots in the tenant's dispatch window (one Redis script per queue); the tasks
 * that got none are stored held and the admission loop dispatches them later. When Redis
 * cannot answer, the tasks are held too: they are safe in Postgres and nothing is counted twice.
 */
export function createTaskAdmission (deps: FairnessDeps) {
  return async function reserve<T extends AdmittedRow> (tenant: string, rows: T[]): Promise<Reservation<T>> {
    const byQueue = new Map<string, T[]>()
    for (const row of rows) {
      const list = byQueue.get(row.queue) ?? []
      list.push(row)
      byQueue.set(row.queue, list)
    }
    const reasons = new Map<string, DeferredReason>()
    const slots = new Map<string, number>()
    await Promise.all([...byQueue].map(async ([queue, list]) => {
      let granted = 0
      let first = 0
      try {
        const limit = await deps.limits.cap(tenant, queue)
        reasons.set(queue, limit.reason)
        ;({ granted, first } = await deps.window.reserve(queue, tenant, list.length, limit))
      } catch (err) {
        reasons.set(queue, 'dispatch_unavailable')
        deps.log.warn({ err, queue }, 'no dispatch slot could be reserved; the tasks are stored held and dispatched by the admission loop')
      }
      list.forEach((row, i) => {
        row.held = i >= granted
        if (!row.held) slots.set(row.id, first + i)
      })
    }))
    return {
      rows,
      slots,
      async settle (stored) {
        const kept = new Set(stored.map((r) => r.id))
        const unused: DispatchedTask[] = []
        const held = new Map<string, number>()
        for (const row of rows) {
          if (!kept.has(row.id)) {
            if (slots.has(row.id)) unused.push({ tenant, queue: row.queue })
          } else if (row.held) {
            held.set(row.queue, (held.get(row.queue) ?? 0) + 1)
          }
        }
        for (const [queue, count] of held) deps.deferred?.(queue, reasons.get(queue) ?? 'tenant_window', count)
        await deps.window.release(unused)
      },
    }
  }
}

export type TaskAdmission = ReturnType<typeof createTaskAdmission>
