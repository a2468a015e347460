import type { TaskAttemptRow, TaskRow } from '../db/schema.ts'
import { NO_DEPENDENCIES, type DependencyView } from '../dependencies/dependency-repository.ts'
import { maskSealed } from '../secrets/secret-box.ts'

export type TaskStatus = 'queued' | 'running' | 'completed' | 'failed' | 'cancelled'
export const TERMINAL_STATUSES: readonly TaskStatus[] = ['completed', 'failed', 'cancelled']
export const isTerminal = (status: string): boolean => (TERMINAL_STATUSES as readonly string[]).includes(status)

export type TaskError = { message: string, code: string }

export const ATTEMPT_OUTCOMES = ['running', 'completed', 'failed', 'cancelled', 'lost', 'released', 'timed_out'] as const
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number]

export const iso = (d: Date | null): string | null => (d ? d.toISOString() : null)

/** The public shape of a task, as the contract describes it; `dependencies` from the dependency repository. */
export function toTaskView (row: TaskRow, dependencies: DependencyView = NO_DEPENDENCIES) {
  return {
    id: row.id,
    type: row.type,
    typeVersion: row.typeVersion,
    queue: row.queue,
    status: row.status as TaskStatus,
    priority: row.priority,
    // Secret fields are stored sealed and never leave the API unmasked.
    payload: maskSealed(row.payload),
    result: row.result ?? null,
    error: (row.error ?? null) as TaskError | null,
    progress: row.progress ?? 0,
    attempts: row.attempts,
    maxAttempts: row.maxAttempts,
    runAt: row.runAt.toISOString(),
    timeoutMs: row.timeoutMs,
    idempotencyKey: row.idempotencyKey,
    createdAt: row.createdAt.toISOString(),
    startedAt: iso(row.startedAt),
    finishedAt: iso(row.finishedAt),
    updatedAt: row.updatedAt.toISOString(),
    tags: row.tags ?? [],
    scheduleId: row.scheduleId ?? null,
    scheduledFor: iso(row.scheduledFor ?? null),
    dependsOn: dependencies.dependsOn,
    blockedBy: dependencies.blockedBy,
    onDependencyFailure: row.onDependencyFailure,
  }
}
export type TaskView = ReturnType<typeof toTaskView>

export function toAttemptView (row: TaskAttemptRow) {
  return {
    attempt: row.attempt,
    workerId: row.workerId,
    startedAt: row.startedAt.toISOString(),
    finishedAt: iso(row.finishedAt),
    outcome: row.outcome as AttemptOutcome,
    error: (row.error ?? null) as TaskError | null,
    durationMs: row.durationMs,
  }
}
export type AttemptView = ReturnType<typeof toAttemptView>
