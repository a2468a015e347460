import type { OutboundResponse } from '../../core/outbound/outbound-client.ts'
import type { WebhookOutcome } from '../../core/outbound/webhook-metrics.ts'
import { jsonTextTooDeep, MAX_JSON_DEPTH } from '../../core/json-depth.ts'
import { PermanentTaskError, RetryableTaskError } from '../task-handler.ts'

// What a webhook executor's answer means, as the contract says: 2xx (but 202) completes with
// the JSON body as the result (or null without a body); 202 leaves the attempt open for
// callbacks; 408, 429 and 5xx are retried (Retry-After honoured when longer than the backoff);
// any other status fails at once with WEBHOOK_REJECTED.

const ERROR_BODY_BYTES = 1024

export type Answer =
  | { kind: 'result', value: unknown, outcome: WebhookOutcome }
  | { kind: 'accepted', outcome: WebhookOutcome }
  | { kind: 'error', error: Error, outcome: WebhookOutcome }

/** `Retry-After` in seconds or as an HTTP date, in milliseconds from `now`; undefined when absent or unreadable. */
export function retryAfterMs (header: string | string[] | undefined, now = Date.now()): number | undefined {
  const value = Array.isArray(header) ? header[0] : header
  if (value === undefined || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}

function resultOf (response: OutboundResponse): unknown {
  if (response.truncated) throw new PermanentTaskError('the answer\'s body is over TASKLANE_MAX_RESULT_BYTES', 'RESULT_TOO_LARGE')
  if (response.text.trim() === '') return null
  if (jsonTextTooDeep(response.text)) throw new PermanentTaskError(`the answer nests deeper than ${MAX_JSON_DEPTH} levels`, 'RESULT_TOO_DEEP')
  try {
    return JSON.parse(response.text)
  } catch {
    throw new PermanentTaskError('the answer\'s body is not JSON; a webhook answers with a JSON result or no body', 'RESULT_INVALID')
  }
}

export function readAnswer (host: string, response: OutboundResponse): Answer {
  const { status } = response
  if (status === 202) return { kind: 'accepted', outcome: 'accepted' }
  if (status >= 200 && status < 300) {
    try {
      return { kind: 'result', value: resultOf(response), outcome: 'success' }
    } catch (err) {
      return { kind: 'error', error: err as Error, outcome: 'rejected' }
    }
  }
  if (status === 408 || status === 429 || status >= 500) {
    const error = new RetryableTaskError(`${host} answered ${status}`, 'WEBHOOK_RETRYABLE_STATUS', retryAfterMs(response.headers['retry-after']))
    return { kind: 'error', error, outcome: 'retryable_status' }
  }
  const body = Buffer.from(response.text).subarray(0, ERROR_BODY_BYTES).toString('utf8')
  return { kind: 'error', error: new PermanentTaskError(`${host} answered ${status}${body ? `: ${body}` : ''}`, 'WEBHOOK_REJECTED'), outcome: 'rejected' }
}
