import { setTimeout as sleep } from 'node:timers/promises'
import type { Db } from '../db/db-client.ts'
import type { TaskRow } from '../db/schema.ts'
import { TaskConflictError, TaskNotFoundError } from '../errors.ts'
import { isUuid } from '../ids.ts'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import { createTaskControlRepository } from './task-control-repository.ts'
import type { TaskEventPublisher } from './task-events.ts'
import { createTaskRepository } from './task-repository.ts'
import { conflictMessage, isAllowed, type TaskAction } from './task-states.ts'
import { statusEventOf } from './task-status-event.ts'
import { toTaskView, type TaskStatus, type TaskView } from './task-view.ts'
import type { TaskTransitions } from './transitions.ts'
import type { StoredAdmission } from '../fairness/stored-admission.ts'
import type postgres from 'postgres'
import { createDependencyRepository } from '../dependencies/dependency-repository.ts'

export type TaskControlDeps = {
  db: Db
  transitions: Pick<TaskTransitions, 'cancel' | 'retry' | 'delete'>
  queues: Pick<QueueRegistry, 'enqueue' | 'get'>
  events: Pick<TaskEventPublisher, 'publish' | 'requestCancel'>
  log: Logger
  /** Ends a task a pull worker holds as cancelled at once (its worker hears it by heartbeat). */
  leases?: { cancelLeased: (taskId: string) => Promise<TaskView | undefined> }
  /** Fair sharing: a retried task takes a dispatch slot like a new one, or waits held. */
  admitStored?: StoredAdmission
}

// A job whose worker is still handing it back to BullMQ is locked and cannot be removed yet.
const REMOVE_TRIES = 20
const REMOVE_PAUSE_MS = 100

/** Cancel, retry and delete: what a client may do to a task it owns, and the stats of its tasks. */
export function createTaskControlService (deps: TaskControlDeps) {
  const control = createTaskControlRepository(deps.db)
  const tasks = createTaskRepository(deps.db)
  const dependencies = createDependencyRepository((deps.db as Db & { $client: postgres.Sql }).$client)

  async function view (row: TaskRow): Promise<TaskView> {
    return toTaskView(row, row.dependencyCount > 0 ? (await dependencies.views([row.id])).get(row.id) : undefined)
  }

  async function find (tenant: string, id: string): Promise<TaskRow> {
    const row = isUuid(id) ? await tasks.findById(tenant, id) : undefined
    if (!row) throw new TaskNotFoundError(id)
    return row
  }

  /** After a conditional update matched nothing: 404 when the task is not the tenant's, else 409. */
  async function refuse (action: TaskAction, tenant: string, id: string): Promise<never> {
    const status = await control.status(tenant, id)
    if (!status) throw new TaskNotFoundError(id)
    throw new TaskConflictError(conflictMessage(action, status))
  }

  /** Removes the task's BullMQ job (job ids are task ids); true when no job is left. */
  async function removeJob (queue: string, id: string): Promise<boolean> {
    const q = deps.queues.get(queue)
    for (let i = 0; i < REMOVE_TRIES; i++) {
      try {
        if (await q.remove(id) === 1 || !(await q.getJob(id))) return true
      } catch (err) {
        deps.log.warn({ err, taskId: id }, 'removing a job failed')
        return false
      }
      await sleep(REMOVE_PAUSE_MS)
    }
    return false
  }

  return {
    /**
     * Queued (or delayed, or waiting out a backoff): cancelled at once and its job removed.
     * Running: the request is recorded and broadcast; the worker holding the job aborts it.
     * Already cancelled: nothing to do. Completed or failed: 409.
     */
    async cancel (tenant: string, id: string): Promise<TaskView> {
      if (!isUuid(id)) throw new TaskNotFoundError(id)
      const row = await deps.transitions.cancel(tenant, id)
      if (!row) {
        const current = await find(tenant, id)
        if (current.status === 'cancelled') return view(current)
        return refuse('cancel', tenant, id)
      }
      if (row.status === 'cancelled') {
        await deps.events.publish(id, statusEventOf(row))
        // A worker that takes the job before it is gone finds the task cancelled and skips it.
        if (!(await removeJob(row.queue, id))) deps.log.warn({ taskId: id }, 'the job of a cancelled task is still in its queue')
      } else {
        const leased = await deps.leases?.cancelLeased(id)
        if (leased) return leased
        const listeners = await deps.events.requestCancel(id)
        if (listeners === 0) deps.log.warn({ taskId: id }, 'no worker heard the cancel request; the task stops at its next claim')
      }
      return view(row)
    },

    /** Failed or cancelled back to queued, with a fresh attempt budget and a new job. */
    async retry (tenant: string, id: string): Promise<TaskView> {
      const current = await find(tenant, id)
      if (!isAllowed('retry', current.status)) return refuse('retry', tenant, id)
      // The new job reuses the task id, so the old one (kept for the dashboard) must go first.
      const removed = await removeJob(current.queue, id)
      const row = await deps.transitions.retry(tenant, id)
      if (!row) return refuse('retry', tenant, id)
      if (!removed) deps.log.warn({ taskId: id }, 'the old job is still in its queue; the reconciler will enqueue the retry')
      // A task that waits for dependencies again is enqueued when the last one completes.
      if (row.blockedCount === 0 && deps.admitStored) {
        await deps.admitStored([row])
      } else if (row.blockedCount === 0) {
        try {
          await deps.queues.enqueue([row])
        } catch (err) {
          deps.log.warn({ err, taskId: id }, 'enqueue failed; the task is queued and will be enqueued by the reconciler')
        }
      }
      await deps.events.publish(id, statusEventOf(row))
      return view(row)
    },

    /** Deletes a terminal task and its attempts. */
    async delete (tenant: string, id: string): Promise<void> {
      const current = await find(tenant, id)
      if (!isAllowed('delete', current.status)) return refuse('delete', tenant, id)
      if (!(await deps.transitions.delete(tenant, id))) return refuse('delete', tenant, id)
      await removeJob(current.queue, id)
    },

    /** Counts of the tenant's tasks by status, and by type and status. */
    async stats (tenant: string) {
      const zero = (): Record<TaskStatus, number> =>
        ({ queued: 0, running: 0, completed: 0, failed: 0, cancelled: 0 })
      const byStatus = zero()
      const byType: Record<string, Record<TaskStatus, number>> = {}
      let total = 0
      for (const { status, type, count } of await control.countByStatusAndType(tenant)) {
        byStatus[status] += count
        ;(byType[type] ??= zero())[status] += count
        total += count
      }
      return { total, byStatus, byType }
    },
  }
}

export type TaskControlService = ReturnType<typeof createTaskControlService>
