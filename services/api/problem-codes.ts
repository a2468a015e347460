/**
 * The one documented set of `Problem.code` values. Each code names one problem type: the type
 * is `urn:tasklane:problem:` and the code in lower case with dashes (`TASK_NOT_FOUND` is
 * `urn:tasklane:problem:task-not-found`). Clients switch on the code; anything the server
 * throws is mapped onto this set once, in `problemCode`, so no framework code leaks.
 */
export const PROBLEM_CODES = {
  BAD_REQUEST: 'The request cannot be read (a URL, header or body the server cannot parse)',
  MALFORMED_JSON: 'The body is not valid JSON, or is empty where JSON was declared',
  VALIDATION: 'The request does not match the schema; `errors[]` says where',
  UNAUTHENTICATED: 'A missing, unknown or revoked API key (or the admin key where one is needed)',
  TASK_NOT_FOUND: 'No such task for this tenant',
  QUEUE_NOT_FOUND: 'No such queue',
  ROUTE_NOT_FOUND: 'No such route',
  METHOD_NOT_ALLOWED: 'The route exists, the method does not (see `Allow`)',
  REQUEST_TIMEOUT: 'The request was not received in time',
  TASK_CONFLICT: 'The task is in a state that does not allow this',
  IDEMPOTENCY_CONFLICT: 'The Idempotency-Key was used with a different request body',
  BODY_TOO_LARGE: 'The request body is over the limit',
  PAYLOAD_TOO_LARGE: 'A task payload is over the limit',
  UNSUPPORTED_MEDIA_TYPE: 'The body is not JSON',
  UNSUPPORTED_CONTENT_ENCODING: 'The body is compressed',
  UNKNOWN_TASK_TYPE: 'No task type of that name',
  TASK_TYPE_NOT_FOUND: 'No registered task type of that name for this tenant',
  BUILTIN_TASK_TYPE: 'A built-in task type cannot be registered, replaced or deleted',
  TASK_TYPE_LIMIT: 'The tenant has as many registered task types as it may',
  NOT_WEBHOOK_TYPE: 'The task type has no webhook executor, so no signing secret',
  LEASE_LOST: 'The lease expired, ended, or is not known: another attempt owns the task (fencing)',
  CALLBACK_NOT_FOUND: 'No webhook attempt has this callback token',
  ATTEMPT_ENDED: 'The webhook attempt of this callback token has ended (completed, failed, timed out or cancelled): nothing more is recorded',
  RATE_LIMITED: 'Too many requests; see `Retry-After`',
  TOO_MANY_STREAMS: 'The tenant has as many event streams open as it may; see `Retry-After`',
  HEADERS_TOO_LARGE: 'The request headers are over the limit',
  MALFORMED_REQUEST: 'The HTTP request itself is malformed (a NUL in a header, conflicting framing); the connection closes',
  JSON_TOO_DEEP: 'The JSON body nests deeper than the documented maximum',
  UNSUPPORTED_CHARSET: 'The body declares a charset other than UTF-8',
  SCHEDULE_NOT_FOUND: 'No such schedule for this tenant',
  SCHEDULE_NAME_TAKEN: 'The tenant has a schedule of that name already',
  WEBHOOK_ENDPOINT_NOT_FOUND: 'No such notification endpoint for this tenant',
  INTERNAL: 'The server failed; quote `requestId` when reporting it',
  UNAVAILABLE: 'A backing service (Postgres, Redis) does not answer; see `Retry-After`',
  OVERLOADED: 'The process sheds load or is at a capacity limit; see `Retry-After`',
} as const

export type ProblemCode = keyof typeof PROBLEM_CODES

const isProblemCode = (code: string): code is ProblemCode => Object.hasOwn(PROBLEM_CODES, code)

/** Framework and library codes that have a code of their own in the set. */
const FOREIGN: Record<string, ProblemCode> = {
  FST_ERR_CTP_INVALID_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_EMPTY_JSON_BODY: 'MALFORMED_JSON',
  FST_ERR_CTP_BODY_TOO_LARGE: 'BODY_TOO_LARGE',
  FST_ERR_CTP_INVALID_MEDIA_TYPE: 'UNSUPPORTED_MEDIA_TYPE',
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: 'BAD_REQUEST',
  FST_ERR_VALIDATION: 'VALIDATION',
}

/** When a code is not in the set, the status decides. */
const BY_STATUS: Record<number, ProblemCode> = {
  400: 'BAD_REQUEST', 401: 'UNAUTHENTICATED', 404: 'ROUTE_NOT_FOUND', 405: 'METHOD_NOT_ALLOWED', 408: 'REQUEST_TIMEOUT',
  413: 'BODY_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE', 429: 'RATE_LIMITED', 431: 'HEADERS_TOO_LARGE', 503: 'UNAVAILABLE',
}

/** The code a problem document carries: `TASKLANE_X` is `X`; anything else maps by name, then by status. */
export function problemCode (code: string | undefined, status: number): ProblemCode {
  const bare = code?.replace(/^TASKLANE_/, '')
  if (bare !== undefined && isProblemCode(bare)) return bare
  if (code !== undefined && FOREIGN[code]) return FOREIGN[code]
  return BY_STATUS[status] ?? (status >= 500 ? 'INTERNAL' : 'BAD_REQUEST')
}

/** `TASK_NOT_FOUND` -> `urn:tasklane:problem:task-not-found`. */
export const problemType = (code: ProblemCode): string => `urn:tasklane:problem:${code.toLowerCase().replace(/_/g, '-')}`
