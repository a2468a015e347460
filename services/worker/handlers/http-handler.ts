import { Agent, request, type Dispatcher } from 'undici'
import type { TaskHandler } from '../task-handler.ts'
import { PermanentTaskError, RetryableTaskError } from '../task-handler.ts'
import { jsonTextTooDeep } from '../../core/json-depth.ts'
import { assertPublicLiteral, publicOnlyLookup } from './address-guard.ts'

type HttpPayload = {
  method: Dispatcher.HttpMethod
  url: string
  headers?: Record<string, string>
  body?: unknown
  timeoutMs?: number
  expectStatus?: number | number[]
}

const BODY_CAP_BYTES = 64 * 1024

async function readCapped (body: Dispatcher.ResponseData<unknown>['body']): Promise<{ text: string, truncated: boolean }> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buf = chunk as Buffer
    if (size + buf.length > BODY_CAP_BYTES) {
      chunks.push(buf.subarray(0, BODY_CAP_BYTES - size))
      body.destroy()
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true }
    }
    chunks.push(buf)
    size += buf.length
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false }
}

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

export function createHttpHandler (options: { allowPrivate: boolean }): TaskHandler<HttpPayload> & { close: () => Promise<void> } {
  const dispatcher = new Agent({
    connect: options.allowPrivate ? {} : { lookup: publicOnlyLookup },
    keepAliveTimeout: 10_000,
  })

  const handler = async (ctx: Parameters<TaskHandler<HttpPayload>>[0]) => {
    const { method, url, headers = {}, body, timeoutMs, expectStatus } = ctx.payload
    const target = new URL(url)
    if (!options.allowPrivate) assertPublicLiteral(target.hostname)
    const ownTimeout = timeoutMs ? AbortSignal.timeout(timeoutMs) : undefined
    const signal = ownTimeout ? AbortSignal.any([ctx.signal, ownTimeout]) : ctx.signal
    const isText = typeof body === 'string'
    const sendHeaders = body !== undefined && !isText && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')
      ? { ...headers, 'content-type': 'application/json' }
      : headers

    /** What a failed request or read becomes: the task's error, with a documented code. */
    const failure = (err: unknown): Error => {
      if (err instanceof PermanentTaskError) return err
      const cause = (err as { cause?: unknown }).cause
      if (cause instanceof PermanentTaskError) return cause
      if (ctx.signal.aborted) return err as Error
      if (ownTimeout?.aborted) return new RetryableTaskError(`${target.host} did not answer within ${timeoutMs} ms`, 'TIMEOUT')
      const code = (err as { code?: unknown }).code
      return new RetryableTaskError(`request to ${target.host} failed: ${(err as Error).message}`, typeof code === 'string' ? code : 'NETWORK')
    }

    let response: Dispatcher.ResponseData<unknown>
    try {
      response = await request(target, {
        method,
        headers: sendHeaders,
        body: body === undefined ? undefined : isText ? body : JSON.stringify(body),
        signal,
        dispatcher,
      })
    } catch (err) {
      throw failure(err)
    }
    let text: string, truncated: boolean
    try {
      ({ text, truncated } = await readCapped(response.body))
    } catch (err) {
      throw failure(err)
    }
    const result = {
      status: response.statusCode,
      headers: response.headers,
      body: parseBody(text, String(response.headers['content-type'] ?? ''), truncated),
      ...(truncated ? { truncated: true } : {}),
    }
    if (accepted(response.statusCode, expectStatus)) return result
    if (response.statusCode >= 500 || response.statusCode === 429) {
      throw new RetryableTaskError(`${target.host} answered ${response.statusCode}`, 'HTTP_RETRYABLE_STATUS')
    }
    throw new PermanentTaskError(`${target.host} answered ${response.statusCode}`, 'HTTP_UNEXPECTED_STATUS')
  }
  return Object.assign(handler, { close: () => dispatcher.close() })
}
