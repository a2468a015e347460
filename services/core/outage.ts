// Errors that mean a connection to a dependency was refused or cut: a write that failed so is
// worth retrying, and the API answers it with 503 and Retry-After instead of 500.
const OUTAGE_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN',
  'CONNECT_TIMEOUT', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED',
  '57P01', '57P02', '57P03', '53300',
])

// ioredis rejects commands during an outage with plain Errors that carry no code: known by
// class name (MaxRetriesPerRequestError) or by message.
const REDIS_OUTAGE_MESSAGES = [
  "Stream isn't writeable", // offline, with enableOfflineQueue false
  'Command timed out', // commandTimeout
  'Connection is closed.',
  'Reached the max retries per request limit',
]

export function isOutage (err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && OUTAGE_CODES.has(code)
}

/**
 * A batched write the write batcher stopped waiting for: its statement may still land, later.
 * Retrying it is as safe as retrying after a cut connection (the writes are conditional), and
 * a keyed batcher holds the retry of a row until that statement has ended, so the retry's
 * answer is the final one.
 */
export function isUnanswered (err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 'WRITE_TIMEOUT'
}

/**
 * What the API answers with 503 and Retry-After: an outage, and also a dependency too slow to
 * answer, whose write may still land: the write batcher's WRITE_TIMEOUT, and ioredis'
 * offline, timeout and max-retries rejections.
 */
export function isUnavailable (err: unknown): boolean {
  if (isOutage(err) || isUnanswered(err)) return true
  const e = err as { code?: unknown, name?: unknown, message?: unknown } | null
  if (e?.name === 'MaxRetriesPerRequestError') return true
  const message = typeof e?.message === 'string' ? e.message : ''
  return REDIS_OUTAGE_MESSAGES.some((m) => message.startsWith(m))
}
