import { randomUUID } from 'node:crypto'
import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import { problemDocument } from './plugins/problem-details.ts'

/** What Node's HTTP parser and timers report, as the status and code a client reads. */
function classify (code: string | undefined): { status: number, code: string, detail: string } {
  if (code === 'ERR_HTTP_REQUEST_TIMEOUT') return { status: 408, code: 'REQUEST_TIMEOUT', detail: 'The request was not received in time' }
  if (code === 'HPE_HEADER_OVERFLOW') return { status: 431, code: 'HEADERS_TOO_LARGE', detail: 'The request headers are too large' }
  return { status: 400, code: 'MALFORMED_REQUEST', detail: 'The request is not valid HTTP/1.1' }
}

/**
 * Answers a request the HTTP parser refused (a NUL in a header, headers too large, conflicting
 * Content-Length and Transfer-Encoding, a request not received within requestTimeout) with a
 * problem document like every other error, then closes the connection: after a parse error
 * the rest of the stream cannot be trusted.
 */
export function createClientErrorHandler (log: FastifyBaseLogger) {
  return function clientErrorHandler (err: Error & { code?: string }, socket: Socket): void {
    if (err.code === 'ECONNRESET' || socket.destroyed) return
    const { status, code, detail } = classify(err.code)
    const requestId = randomUUID()
    log.info({ err: { message: err.message, code: err.code }, statusCode: status, requestId }, 'request rejected by the HTTP parser')
    if (!socket.writable) {
      socket.destroy()
      return
    }
    const problem = problemDocument(status, { code, detail }, requestId)
    const body = JSON.stringify(problem)
    socket.end(`HTTP/1.1 ${status} ${problem.title}\r\n` +
      'Content-Type: application/problem+json; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nX-Request-Id: ${requestId}\r\nConnection: close\r\n\r\n${body}`)
  }
}
