import type { Db } from '../db/db-client.ts'
import type { TaskRow } from '../db/schema.ts'
import { PayloadTooLargeError, UnknownTaskTypeError, ValidationError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { TaskService } from '../tasks/task-service.ts'
import { planDue } from './schedule-plan.ts'
import { createScheduleRepository } from './schedule-repository.ts'
import type { TaskTemplate } from './schedule-service.ts'

export type FireOutcome = 'created' | 'skipped_overlap' | 'missed'
export type FireReport = { outcomes: FireOutcome[], task?: TaskRow }

/**
 * Fires one due schedule. The due time is claimed in the transaction that stores the task: the
 * row is locked (another replica skips it) and moved on only from the due time it was read
 * at, and the task's (schedule, due time) key is unique. So however many replicas wake for
 * the same due time, one task is stored; the others find the schedule not due any more.
 * The task is enqueued after the commit, like any created task; if Redis is down it stays
 * queued in Postgres and the reconciler enqueues it.
 */
export function createScheduleFirer (deps: { db: Db, tasks: Pick<TaskService, 'build' | 'dispatchStored'>, graceMs: number, log: Logger }) {
  const repo = createScheduleRepository(deps.db)

  return async function fire (id: string): Promise<FireReport | undefined> {
    const report = await repo.transaction(async (tx) => {
      const claimed = await repo.claimDue(tx, id)
      if (!claimed) return undefined
      const { schedule: s, now } = claimed
      const plan = planDue({ ...s, nextRunAt: s.nextRunAt! }, now, deps.graceMs)
      const outcomes: FireOutcome[] = Array.from({ length: plan.missed }, () => 'missed' as const)
      let task: TaskRow | undefined
      if (plan.fire) {
        if (s.overlap === 'skip' && s.lastTaskId && await repo.isUnfinished(tx, s.lastTaskId)) {
          outcomes.push('skipped_overlap')
        } else {
          try {
            task = await repo.insertTask(tx, deps.tasks.build(s.tenant, s.task as TaskTemplate, { scheduleId: s.id, scheduledFor: plan.fire }))
            if (task) outcomes.push('created')
          } catch (err) {
            // The template no longer fits its type (the type changed or went away): this run
            // is missed, and the schedule moves on rather than failing every pass.
            if (!(err instanceof ValidationError || err instanceof UnknownTaskTypeError || err instanceof PayloadTooLargeError)) throw err
            deps.log.warn({ err, scheduleId: s.id, dueAt: plan.fire }, 'schedule template is not a valid task; run missed')
            outcomes.push('missed')
          }
        }
      }
      await repo.advance(tx, s.id, s.nextRunAt!, {
        nextRunAt: plan.next,
        lastRunAt: task ? plan.fire : s.lastRunAt,
        lastTaskId: task ? task.id : s.lastTaskId,
      })
      if (plan.missed > 0) deps.log.warn({ scheduleId: s.id, missed: plan.missed, caughtUp: s.catchUp === 'latest' ? plan.fire : null }, 'schedule fell behind; due times missed')
      return { outcomes, ...(task ? { task } : {}) }
    })
    if (report?.task) await deps.tasks.dispatchStored([report.task])
    return report
  }
}

export type ScheduleFirer = ReturnType<typeof createScheduleFirer>
