import type { JobFields } from '../queues/job-options.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import { createTaskAdmission, type FairnessDeps } from './task-admission.ts'

export type StoredTask = JobFields & { tenant: string, queue: string }

export type StoredAdmissionDeps = FairnessDeps & {
  queues: Pick<QueueRegistry, 'enqueue'>
  /** Marks queued tasks held (transitions.hold). */
  hold: (ids: readonly string[]) => Promise<unknown>
}

/**
 * Fair sharing for queued tasks that are already stored, not held, and have no job: a
 * schedule's tasks (stored in the transaction that claims the due time), dependents a
 * finished dependency made ready, a client's retry, a create with dependencies. Once their
 * transaction has committed, each tenant's share takes slots as a create does; those that got
 * one are enqueued, the rest are marked held for the admission loop. Nothing here throws: a
 * failed hold or enqueue leaves queued tasks without a job, which the reconciler enqueues (and
 * the counter repair squares their slots).
 */
export function createStoredAdmission (deps: StoredAdmissionDeps) {
  const reserve = createTaskAdmission(deps)

  return async function admitStored (tasks: readonly StoredTask[]): Promise<void> {
    if (tasks.length === 0) return
    const byTenant = new Map<string, (StoredTask & { held?: boolean | undefined })[]>()
    for (const task of tasks) {
      const list = byTenant.get(task.tenant) ?? []
      list.push({ ...task })
      byTenant.set(task.tenant, list)
    }
    const ready: (StoredTask & { slot?: number | undefined })[] = []
    const held: string[] = []
    await Promise.all([...byTenant].map(async ([tenant, list]) => {
      const reservation = await reserve(tenant, list)
      for (const row of reservation.rows) {
        if (row.held) held.push(row.id)
        else ready.push({ ...row, slot: reservation.slots.get(row.id) })
      }
      await reservation.settle(reservation.rows)
    }))
    if (held.length > 0) {
      try {
        await deps.hold(held)
      } catch (err) {
        deps.log.warn({ err, count: held.length }, 'could not hold tasks past their tenant\'s window; the reconciler will enqueue them')
      }
    }
    if (ready.length > 0) {
      try {
        await deps.queues.enqueue(ready)
      } catch (err) {
        deps.log.warn({ err, taskIds: ready.slice(0, 10).map((r) => r.id), count: ready.length },
          'enqueue failed; the tasks are queued and will be enqueued by the reconciler')
      }
    }
  }
}

export type StoredAdmission = ReturnType<typeof createStoredAdmission>
