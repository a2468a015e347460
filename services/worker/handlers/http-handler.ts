import { Agent, request, type Dispatcher } from 'undici'
import type { TaskHandler } from '../task-handler.ts'
import { PermanentTaskError, RetryableTaskError } from '../task-handler.ts'
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

function parseBody (text: string, contentType: string | undefined, truncated: boolean): unknown {
  if (!truncated && contentType?.includes('json')) {
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
    const signal = timeoutMs ? AbortSignal.any([ctx.signal, AbortSignal.timeout(timeoutMs)]) : ctx.signal
    const isText = typeof body === 'string'
    const sendHeaders = body !== undefined && !isText && !Object.keys(headers).some((h) => h.toLowerCase() === 'content-type')
      ? { ...headers, 'content-type': 'application/json' }
      : headers

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
      if (err instanceof PermanentTaskError) throw err
      const cause = (err as { cause?: unknown }).cause
      if (cause instanceof PermanentTaskError) throw cause
      if (ctx.signal.aborted) throw err
      const code = (err as { code?: string }).code
      throw new RetryableTaskError(`request to ${target.host} failed: ${(err as Error).message}`, code ?? 'NETWORK')
    }

    const { text, truncated } = await readCapped(response.body)
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
