import type { Dispatcher } from 'undici'
import type { OutboundClient } from '../../core/outbound/outbound-client.ts'
import { OutboundError } from '../../core/outbound/outbound-error.ts'
import { jsonTextTooDeep } from '../../core/json-depth.ts'
import type { TaskHandler } from '../task-handler.ts'
import { PermanentTaskError, RetryableTaskError } from '../task-handler.ts'

type HttpPayload = {
  method: Dispatcher.HttpMethod
  url: string
  headers?: Record<string, string>
  body?: unknown
  timeoutMs?: number
  expectStatus?: number | number[]
}

// Without its own timeoutMs a request may take what is left of the task's timeout (the
// runner's signal ends it then).
const NO_TIMEOUT_MS = 2_147_483_647

/** JSON when it says so and parses; otherwise, or when it nests too deep to store, the text. */
function parseBody (text: string, contentType: string | undefined, truncated: boolean): unknown {
  if (!truncated && contentType?.includes('json') && !jsonTextTooDeep(text)) {
    try { return JSON.parse(text) } catch { /* not JSON after all: keep the text */ }
  }
  return text
}

function accepted (status: number, expect: number | number[] | undefined): boolean {
  if (expect === undefined) return status >= 200 && status < 300
  return Array.isArray(expect) ? expect.includes(status) : status === expect
}

/** The built-in `http` type: one request through the shared outbound client. */
export function createHttpHandler (client: OutboundClient): TaskHandler<HttpPayload> {
  return async (ctx) => {
    const { method, url, headers = {}, body, timeoutMs, expectStatus } = ctx.payload
    const target = new URL(url)
    const isText = typeof body === 'string'
    const sendHeaders = body !== undefined && !isText && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')
      ? { ...headers, 'content-type': 'application/json' }
      : headers

    let response
    try {
      response = await client.send({
        method, url, headers: sendHeaders, signal: ctx.signal, timeoutMs: timeoutMs ?? NO_TIMEOUT_MS,
        body: body === undefined ? undefined : isText ? body : JSON.stringify(body),
      })
    } catch (err) {
      if (!(err instanceof OutboundError)) throw err
      if (!err.retryable) throw new PermanentTaskError(err.message, err.code)
      throw new RetryableTaskError(err.message, err.code)
    }

    const result = {
      status: response.status,
      headers: response.headers,
      body: parseBody(response.text, String(response.headers['content-type'] ?? ''), response.truncated),
      ...(response.truncated ? { truncated: true } : {}),
    }
    if (accepted(response.status, expectStatus)) return result
    if (response.status >= 500 || response.status === 429) {
      throw new RetryableTaskError(`${target.host} answered ${response.status}`, 'HTTP_RETRYABLE_STATUS')
    }
    throw new PermanentTaskError(`${target.host} answered ${response.status}`, 'HTTP_UNEXPECTED_STATUS')
  }
}
