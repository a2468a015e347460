/**
 * Why an outbound request got no answer: FORBIDDEN_ADDRESS (the address policy refused the
 * target; retrying cannot help), TIMEOUT, or the socket's code (ECONNREFUSED, ENOTFOUND... or NETWORK).
 */
export class OutboundError extends Error {
  readonly code: string
  readonly retryable: boolean
  constructor (message: string, code: string, retryable: boolean) {
    super(message)
    this.name = 'OutboundError'
    this.code = code
    this.retryable = retryable
  }
}
