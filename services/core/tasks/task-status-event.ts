import type { TaskRow } from '../db/schema.ts'
import type { TaskStatusEvent } from './task-events.ts'
import type { TaskError } from './task-view.ts'

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null)

/** The status event of a row just written by a transition. */
export function statusEventOf (row: Pick<TaskRow, 'status' | 'attempts' | 'error' | 'runAt' | 'startedAt' | 'finishedAt' | 'updatedAt'>): TaskStatusEvent {
  return {
    kind: 'status',
    status: row.status,
    attempts: row.attempts,
    error: (row.error ?? null) as TaskError | null,
    runAt: iso(row.runAt) ?? undefined,
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    updatedAt: iso(row.updatedAt) ?? new Date().toISOString(),
  }
}
