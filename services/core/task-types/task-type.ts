import { Type, type Static, type TSchema } from 'typebox'

export const PRIORITIES = ['critical', 'high', 'normal', 'low'] as const
export type Priority = (typeof PRIORITIES)[number]

export const BackoffSchema = Type.Object({
  type: Type.Union([Type.Literal('exponential'), Type.Literal('fixed')]),
  delayMs: Type.Integer({ minimum: 0, maximum: 86_400_000 }),
}, { additionalProperties: false })
export type Backoff = Static<typeof BackoffSchema>

export type TaskDefaults = {
  priority: Priority
  maxAttempts: number
  timeoutMs: number
  backoff: Backoff
}

/**
 * What API and worker share about a task type. The handler lives in the worker only, so the
 * API can validate and enqueue without loading the code that runs the task.
 */
export type TaskTypeDefinition<S extends TSchema = TSchema> = {
  name: string
  queue: string
  description: string
  payloadSchema: S
  defaults: TaskDefaults
  /** Top-level payload fields that logs must never show. */
  secretFields?: readonly string[]
}

export const DEFAULT_TASK_DEFAULTS: TaskDefaults = {
  priority: 'normal',
  maxAttempts: 3,
  timeoutMs: 30_000,
  backoff: { type: 'exponential', delayMs: 2_000 },
}

export function defineTaskType<S extends TSchema> (
  definition: Omit<TaskTypeDefinition<S>, 'defaults'> & { defaults?: Partial<TaskDefaults> },
): TaskTypeDefinition<S> {
  return { ...definition, defaults: { ...DEFAULT_TASK_DEFAULTS, ...definition.defaults } }
}
