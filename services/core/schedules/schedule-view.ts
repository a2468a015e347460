import type { ScheduleRow } from '../db/schema.ts'
import { iso } from '../tasks/task-view.ts'

/** The public shape of a schedule, as the contract describes it. */
export function toScheduleView (row: ScheduleRow) {
  return {
    id: row.id,
    name: row.name,
    cron: row.cron,
    timezone: row.timezone,
    task: row.task,
    overlap: row.overlap,
    catchUp: row.catchUp,
    paused: row.paused,
    startAt: iso(row.startAt),
    endAt: iso(row.endAt),
    nextRunAt: iso(row.nextRunAt),
    lastRunAt: iso(row.lastRunAt),
    lastTaskId: row.lastTaskId,
    createdAt: row.createdAt.toISOString(),
    updatedAt: row.updatedAt.toISOString(),
  }
}
export type ScheduleView = ReturnType<typeof toScheduleView>
