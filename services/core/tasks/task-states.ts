import type { TaskStatus } from './task-view.ts'

// The rules about which task states allow which client action. Routes never decide this;
// transitions.ts turns each rule into the WHERE clause of a conditional update, so a rule
// and the write that relies on it cannot drift apart.

export type TaskAction = 'cancel' | 'retry' | 'delete'

/** States from which an action may start. Cancelling a cancelled task is a no-op, not a conflict. */
export const ALLOWED_FROM: Record<TaskAction, readonly TaskStatus[]> = {
  cancel: ['queued', 'running'],
  retry: ['failed', 'cancelled'],
  delete: ['completed', 'failed', 'cancelled'],
}

export const isAllowed = (action: TaskAction, status: TaskStatus): boolean => ALLOWED_FROM[action].includes(status)

/** The message of the 409 a client gets when it asks for an action in the wrong state. */
export function conflictMessage (action: TaskAction, status: TaskStatus): string {
  const allowed = ALLOWED_FROM[action].join(' or ')
  return `Task is ${status}; ${action} is only possible when it is ${allowed}`
}
