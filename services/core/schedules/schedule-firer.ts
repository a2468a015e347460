import type { Db } from '../db/db-client.ts'
import type { TaskRow } from '../db/schema.ts'
import { PayloadTooLargeError, UnknownTaskTypeError, ValidationError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { TaskService } from '../tasks/task-service.ts'
import { planDue } from './schedule-plan.ts'
import { createScheduleRepository } from './schedule-repository.ts'
import type { TaskTemplate } from './schedule-service.ts'

export type FireOutcome = 'created' | 'skipped_overlap' | 'missed'
export type FireReport = { outcomes: FireOutcome[], tasks: TaskRow[] }

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
      const made: TaskRow[] = []
      let unfinished = s.overlap === 'skip' && s.lastTaskId !== null && await repo.isUnfinished(tx, s.lastTaskId)
      for (const due of plan.fire) {
        if (unfinished) { outcomes.push('skipped_overlap'); continue }
        try {
          const task = await repo.insertTask(tx, deps.tasks.build(s.tenant, s.task as TaskTemplate, { scheduleId: s.id, scheduledFor: due }))
          if (!task) continue
          made.push(task)
          outcomes.push('created')
          unfinished = s.overlap === 'skip'
        } catch (err) {
          // The template no longer fits its type (the type changed or went away): this run
          // is missed, and the schedule moves on rather than failing every pass.
          if (!(err instanceof ValidationError || err instanceof UnknownTaskTypeError || err instanceof PayloadTooLargeError)) throw err
          deps.log.warn({ err, scheduleId: s.id, dueAt: due }, 'schedule template is not a valid task; run missed')
          outcomes.push('missed')
        }
      }
      const last = made.at(-1)
      await repo.advance(tx, s.id, s.nextRunAt!, {
        nextRunAt: plan.next,
        lastRunAt: last ? last.scheduledFor : s.lastRunAt,
        lastTaskId: last ? last.id : s.lastTaskId,
      })
      if (plan.missed > 0) deps.log.warn({ scheduleId: s.id, missed: plan.missed, catchUp: s.catchUp }, 'schedule fell behind; due times missed')
      return { outcomes, tasks: made }
    })
    if (report) await deps.tasks.dispatchStored(report.tasks)
    return report
  }
}

export type ScheduleFirer = ReturnType<typeof createScheduleFirer>
