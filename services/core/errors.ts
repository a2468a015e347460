import createError from '@fastify/error'

// Every error a client can cause is a coded value with its HTTP status; the API maps them
// to problem documents in one place. Server faults never carry their message to a client.
export const TaskNotFoundError = createError<[string]>('TASKLANE_TASK_NOT_FOUND', 'Task %s was not found', 404)
export const UnknownTaskTypeError = createError<[string]>('TASKLANE_UNKNOWN_TASK_TYPE', 'Unknown task type "%s"', 422)
export const TaskConflictError = createError<[string]>('TASKLANE_TASK_CONFLICT', '%s', 409)
export const IdempotencyConflictError = createError('TASKLANE_IDEMPOTENCY_CONFLICT',
  'This Idempotency-Key was already used with a different request body', 409)
export const QueueNotFoundError = createError<[string]>('TASKLANE_QUEUE_NOT_FOUND', 'Queue %s was not found', 404)
export const DependencyUnavailableError = createError<[string]>('TASKLANE_UNAVAILABLE', '%s is unavailable, try again later', 503)

export type FieldError = { path: string, message: string }

/** A problem document lists at most this many field errors and says how many it left out. */
export const MAX_FIELD_ERRORS = 20

/** A request that failed validation: carries one entry per offending field. */
export class ValidationError extends Error {
  readonly statusCode = 400
  readonly code = 'TASKLANE_VALIDATION'
  readonly errors: FieldError[]
  constructor (errors: FieldError[], message = 'The request does not match the schema') {
    super(message)
    this.errors = errors
  }
}
export const PayloadTooLargeError = createError<[number, number]>('TASKLANE_PAYLOAD_TOO_LARGE',
  'The task payload is %d bytes; the limit is %d bytes', 413)
export const WebhookEndpointNotFoundError = createError<[string]>('TASKLANE_WEBHOOK_ENDPOINT_NOT_FOUND', 'Webhook endpoint %s was not found', 404)
export const ScheduleNotFoundError = createError<[string]>('TASKLANE_SCHEDULE_NOT_FOUND', 'Schedule %s was not found', 404)
export const ScheduleNameTakenError = createError<[string]>('TASKLANE_SCHEDULE_NAME_TAKEN', 'A schedule named "%s" exists already', 409)
export const JsonTooDeepError = createError<[number]>('TASKLANE_JSON_TOO_DEEP',
  'The JSON body nests deeper than %d levels', 400)
export const UnsupportedCharsetError = createError<[string]>('TASKLANE_UNSUPPORTED_CHARSET',
  'The body is declared as charset "%s"; send UTF-8 (or no charset)', 415)
export const TaskTypeNotFoundError = createError<[string]>('TASKLANE_TASK_TYPE_NOT_FOUND', 'Task type %s was not found', 404)
export const BuiltinTaskTypeError = createError<[string]>('TASKLANE_BUILTIN_TASK_TYPE', '"%s" is a built-in task type and cannot be changed', 409)
export const TaskTypeLimitError = createError<[number]>('TASKLANE_TASK_TYPE_LIMIT', 'A tenant may register at most %d task types; delete one first', 409)
export const NotWebhookTypeError = createError<[string]>('TASKLANE_NOT_WEBHOOK_TYPE', 'Task type %s has no webhook executor, so no signing secret', 409)
/** Fencing: a lease that expired, ended, or is unknown (another tenant's included). */
export const LeaseLostError = createError<[string]>('TASKLANE_LEASE_LOST', '%s', 409)
/** A callback whose path segment is not a callback token at all. */
export const CallbackTokenInvalidError = createError('TASKLANE_UNAUTHENTICATED', 'This is not a callback token', 401)
export const CallbackNotFoundError = createError('TASKLANE_CALLBACK_NOT_FOUND', 'No webhook attempt has this callback token', 404)
/** The attempt a callback token belongs to has ended (completed, failed, timed out, cancelled) or moved on. */
export const AttemptEndedError = createError('TASKLANE_ATTEMPT_ENDED', 'The attempt of this callback token has ended', 409)
