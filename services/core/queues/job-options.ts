import type { JobsOptions } from 'bullmq'
import type { Priority } from '../task-types/task-type.ts'

// BullMQ runs lower numbers first. Every job gets a priority: BullMQ serves its plain wait
// list before prioritized jobs, so "normal" without a priority would overtake "critical".
export const PRIORITY_RANK: Record<Priority, number> = { critical: 1, high: 2, normal: 3, low: 4 }

/** The backoff type whose delay the worker computed and recorded in Postgres itself. */
export const RECORDED_BACKOFF = 'tasklane'

/**
 * Within a priority, jobs are ordered by their tenant's dispatch slot (fair sharing): a task
 * dispatched while its tenant had few tasks in BullMQ goes before those of a tenant filling
 * its window, so a newcomer does not wait behind a flood's whole window.
 */
export const SLOT_SPAN = 1_000

export type JobFields = {
  id: string, type: string, priority: Priority, runAt: Date, maxAttempts: number
  /** How many of its tenant's tasks of the queue were dispatched before it (0 when unknown). */
  slot?: number | undefined
}

export function jobOptions (task: JobFields, now = Date.now()): JobsOptions {
  return {
    jobId: task.id,
    priority: PRIORITY_RANK[task.priority] * SLOT_SPAN + Math.min(task.slot ?? 0, SLOT_SPAN - 1),
    delay: Math.max(0, task.runAt.getTime() - now),
    attempts: task.maxAttempts,
    backoff: { type: RECORDED_BACKOFF },
    // Postgres is the record of every task; Redis keeps only a bounded tail for the dashboard.
    removeOnComplete: { age: 3_600, count: 1_000 },
    removeOnFail: { age: 86_400, count: 5_000 },
  }
}
