/** What a dependent does when one of its dependencies ends failed or cancelled. */
export const DEPENDENCY_FAILURE_POLICIES = ['fail', 'run'] as const
export type DependencyFailurePolicy = typeof DEPENDENCY_FAILURE_POLICIES[number]

/** The most dependencies one task may name. */
export const MAX_DEPENDENCIES = 100

/** The error code of a task ended by the failure or cancellation of something it depends on. */
export const DEPENDENCY_FAILED = 'DEPENDENCY_FAILED'
