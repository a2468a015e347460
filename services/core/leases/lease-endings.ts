import { decideFailure } from '../tasks/attempt-outcome.ts'
import type { LeaseEnding } from '../tasks/lease-statements.ts'
import { findUnstorable } from '../tasks/storable-json.ts'
import type { TaskError } from '../tasks/task-view.ts'
import type { TaskTypeCatalog } from '../task-types/task-type-catalog.ts'

// What an attempt recorded from outside the worker (a pull worker's complete or fail, a
// webhook receiver's callback) means for its task: one decision for both.

type Backoff = Parameters<typeof decideFailure>[0]['backoff']

/** Retried with the task's backoff while attempts are left and the error may pass (decideFailure), else failed. */
export function retryOrFail (attempt: number, maxAttempts: number, backoff: Backoff, error: TaskError,
  retryable: boolean, outcome: string, retryAfterMs?: number): LeaseEnding {
  const decision = decideFailure({ attempts: attempt, maxAttempts, backoff }, retryAfterMs === undefined ? { error, retryable } : { error, retryable, retryAfterMs })
  return decision.kind === 'retry'
    ? { status: 'queued', outcome, error: decision.error, runAt: decision.runAt }
    : { status: 'failed', outcome, error: decision.error }
}

/**
 * Completed with the result, or failed for good: RESULT_INVALID when it does not match the
 * type's result schema (or cannot be stored), RESULT_TOO_LARGE over TASKLANE_MAX_RESULT_BYTES.
 */
export function resultEnding (catalog: Pick<TaskTypeCatalog, 'validateResult'>, tenant: string, type: string, result: unknown,
  maxResultBytes: number | undefined): LeaseEnding {
  const problems = catalog.validateResult(tenant, type, result)
  const unstorable = findUnstorable(result, '/result')
  if (unstorable) problems.push(unstorable)
  if (problems.length > 0) {
    const detail = problems.slice(0, 5).map((p) => `${p.path} ${p.message}`).join('; ')
    return { status: 'failed', outcome: 'failed', error: { code: 'RESULT_INVALID', message: `the result does not match the type's resultSchema: ${detail}`.slice(0, 2_000) } }
  }
  const size = maxResultBytes === undefined ? 0 : Buffer.byteLength(JSON.stringify(result ?? null))
  if (maxResultBytes !== undefined && size > maxResultBytes) {
    return { status: 'failed', outcome: 'failed', error: { code: 'RESULT_TOO_LARGE', message: `the result is ${size} bytes; the limit is ${maxResultBytes}` } }
  }
  return { status: 'completed', outcome: 'completed', result: result ?? null }
}

/** The error a worker or receiver reported, capped and coded. */
export const reportedError = (input: { message: string, code?: string | undefined }): TaskError =>
  ({ message: input.message.slice(0, 2_000), code: input.code ?? 'ERROR' })
