import { Agent, request, type Dispatcher } from 'undici'
import type { Config } from '../config.ts'
import { createAddressPolicy, type AddressPolicy } from './address-policy.ts'
import { OutboundError } from './outbound-error.ts'

export type OutboundRequest = {
  method: Dispatcher.HttpMethod
  url: string
  headers?: Record<string, string>
  body?: string
  /** The whole exchange, response body included. */
  timeoutMs: number
  /** Stops the request early (a cancel, a shutdown); its abort is rethrown as is. */
  signal?: AbortSignal
  /** How much of the response body is kept; the rest is not read. */
  bodyCapBytes?: number
}
export type OutboundResponse = {
  status: number
  headers: Record<string, string | string[] | undefined>
  text: string
  truncated: boolean
}

const DEFAULT_BODY_CAP_BYTES = 64 * 1024

async function readCapped (body: Dispatcher.ResponseData<unknown>['body'], cap: number): Promise<{ text: string, truncated: boolean }> {
  const chunks: Buffer[] = []
  let size = 0
  for await (const chunk of body) {
    const buf = chunk as Buffer
    if (size + buf.length > cap) {
      chunks.push(buf.subarray(0, cap - size))
      body.destroy()
      return { text: Buffer.concat(chunks).toString('utf8'), truncated: true }
    }
    chunks.push(buf)
    size += buf.length
  }
  return { text: Buffer.concat(chunks).toString('utf8'), truncated: false }
}

/**
 * The one HTTP client for requests to URLs a tenant chose: the address policy on every
 * connection, a deadline over the whole exchange, and a cap on what is read back. Any answer
 * (whatever its status) resolves; no answer rejects with an OutboundError, or with the
 * caller's own abort reason.
 */
export function createOutboundClient (policy: AddressPolicy) {
  const dispatcher = new Agent({
    connect: policy.lookup ? { lookup: policy.lookup } : {},
    keepAliveTimeout: 10_000,
  })

  async function send (req: OutboundRequest): Promise<OutboundResponse> {
    const target = new URL(req.url)
    policy.checkLiteral(target.hostname)
    const timeout = AbortSignal.timeout(req.timeoutMs)
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout
    try {
      const response = await request(target, { method: req.method, headers: req.headers, body: req.body, signal, dispatcher })
      const { text, truncated } = await readCapped(response.body, req.bodyCapBytes ?? DEFAULT_BODY_CAP_BYTES)
      return { status: response.statusCode, headers: response.headers, text, truncated }
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason ?? err
      if (err instanceof OutboundError) throw err
      const cause = (err as { cause?: unknown }).cause
      if (cause instanceof OutboundError) throw cause
      if (timeout.aborted) throw new OutboundError(`${target.host} did not answer within ${req.timeoutMs} ms`, 'TIMEOUT', true)
      // The socket's own code (ECONNREFUSED, ENOTFOUND...) says more than "network" to whoever reads the error.
      const code = (err as { code?: string }).code ?? 'NETWORK'
      throw new OutboundError(`request to ${target.host} failed: ${(err as Error).message}`, code, true)
    }
  }

  // Closing cuts what is still in flight: by then the runners have finished or released their
  // attempts, and a delivery cut short is tried again under the same webhook-id.
  return { send, close: () => dispatcher.destroy() }
}

export type OutboundClient = ReturnType<typeof createOutboundClient>

/** The process's client, with the policy the configuration sets. */
export function createConfiguredOutboundClient (config: Pick<Config, 'TASKLANE_HTTP_ALLOW_PRIVATE' | 'allowedHosts'>): OutboundClient {
  return createOutboundClient(createAddressPolicy({ allowPrivate: config.TASKLANE_HTTP_ALLOW_PRIVATE, allowed: config.allowedHosts }))
}
