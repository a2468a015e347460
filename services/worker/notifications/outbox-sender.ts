import type { Queue } from 'bullmq'
import { Counter, type Registry } from 'prom-client'
import { createPassLoop } from '../../core/pass-loop.ts'
import type { Logger } from '../../core/log.ts'
import { deliveryJobOptions, type DeliveryJob } from '../../core/notifications/delivery-queue.ts'
import type { NotificationRepository } from '../../core/notifications/notification-repository.ts'
import type { TaskView } from '../../core/tasks/task-view.ts'

const BATCH = 500

/**
 * Moves owed notifications from the outbox (Postgres, written with the terminal transition)
 * onto the delivery queue, then deletes them from the outbox. A pass that dies between the two
 * adds the same rows again next time under the same job ids, which BullMQ ignores, so each
 * owed notification becomes exactly one delivery. Every replica runs one; no lock is needed.
 */
export function createOutboxSender (deps: {
  repo: Pick<NotificationRepository, 'owed' | 'handedOver'>
  /** The task views of ended tasks, by id (absent: deleted meanwhile). */
  views: (ids: string[]) => Promise<Map<string, TaskView>>
  queue: Pick<Queue<DeliveryJob>, 'addBulk'>
  retryDelays: readonly number[]
  intervalMs: number
  registry: Registry
  log: Logger
}) {
  const { log } = deps
  const handed = new Counter({
    name: 'tasklane_outbox_handed_over_total',
    help: 'Owed notifications moved from the outbox onto the delivery queue',
    registers: [deps.registry],
  })

  /** Hands over everything owed now, in batches; returns how many deliveries were queued. */
  async function pass (): Promise<number> {
    let moved = 0
    for (;;) {
      const owed = await deps.repo.owed(BATCH)
      if (owed.length === 0) break
      const views = await deps.views([...new Set(owed.map((o) => o.taskId))])
      const jobs = owed.filter((o) => views.has(o.taskId)).map((o) => ({
        name: o.event,
        data: {
          deliveryId: o.id, tenant: o.tenant, taskId: o.taskId, endpointId: o.endpointId, event: o.event,
          body: JSON.stringify({ type: o.event, timestamp: o.createdAt.toISOString(), data: views.get(o.taskId) }),
        },
        opts: deliveryJobOptions(o.id, deps.retryDelays),
      }))
      if (jobs.length > 0) await deps.queue.addBulk(jobs)
      await deps.repo.handedOver(owed.map((o) => o.id))
      moved += jobs.length
      if (owed.length < BATCH) break
    }
    return moved
  }

  const loop = createPassLoop({
    name: 'outbox',
    what: 'Passes of the notification outbox sender',
    intervalMs: deps.intervalMs,
    pass,
    passed (moved) {
      handed.inc(moved)
      if (moved > 0) log.info({ moved }, 'outbox pass handed notifications over')
    },
    registry: deps.registry,
    log,
  })

  return {
    pass,
    start: () => loop.start(),
    stop: loop.stop,
  }
}
