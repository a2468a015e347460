import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import fp from 'fastify-plugin'
import { MAX_FIELD_ERRORS, ValidationError, type FieldError } from '../../core/errors.ts'
import { isUnavailable } from '../../core/outage.ts'
import { toFieldErrors } from '../../core/schema-errors.ts'
import { problemCode, problemType, type ProblemCode } from '../problem-codes.ts'

const TITLES: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed',
  406: 'Not Acceptable', 408: 'Request Timeout', 409: 'Conflict', 413: 'Content Too Large', 415: 'Unsupported Media Type',
  422: 'Unprocessable Content', 429: 'Too Many Requests', 431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 503: 'Service Unavailable',
}

type Problem = {
  type: string, title: string, status: number, detail?: string, code: ProblemCode, requestId: string,
  errors?: FieldError[], errorsOmitted?: number,
}

type ProblemFields = { code?: string | undefined, detail?: string, errors?: FieldError[] }

/**
 * A problem document: whatever code it is given, the one it carries is in the documented set,
 * and a list of field errors is cut to MAX_FIELD_ERRORS, saying how many went.
 */
export function problemDocument (status: number, fields: ProblemFields, requestId: string): Problem {
  const { errors, code: _code, ...rest } = fields
  const code = problemCode(fields.code, status)
  const problem: Problem = { type: problemType(code), title: TITLES[status] ?? 'Error', status, requestId, ...rest, code }
  if (errors) {
    problem.errors = errors.slice(0, MAX_FIELD_ERRORS)
    if (errors.length > MAX_FIELD_ERRORS) problem.errorsOmitted = errors.length - MAX_FIELD_ERRORS
  }
  return problem
}

export function sendProblem (reply: FastifyReply, status: number, fields: ProblemFields) {
  return reply.code(status).type('application/problem+json; charset=utf-8').send(problemDocument(status, fields, String(reply.request.id)))
}

function fieldErrors (err: FastifyError): FieldError[] {
  const context = err.validationContext === 'body' ? '' : `/${err.validationContext ?? 'request'}`
  return toFieldErrors(err.validation ?? [], context)
}

/**
 * Every error leaves the API as an RFC 9457 problem document. Client errors keep their
 * message; server errors say only that something failed, with the request id to quote.
 */
export default fp(async function problemDetails (app: FastifyInstance) {
  // Route patterns by method, to tell "no such route" (404) from "wrong method" (405).
  const routes: { pattern: RegExp, method: string }[] = []
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method]
    const pattern = new RegExp(`^${route.url.replace(/:[^/]+/g, '[^/]+').replace(/\*/g, '.*')}/?$`)
    for (const method of methods) routes.push({ pattern, method })
  })

  app.setNotFoundHandler((request: FastifyRequest, reply: FastifyReply) => {
    const path = request.url.split('?')[0] ?? '/'
    const allowed = [...new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method))]
    if (allowed.length > 0) {
      reply.header('allow', allowed.join(', '))
      return sendProblem(reply, 405, { code: 'METHOD_NOT_ALLOWED', detail: `${request.method} is not allowed on ${path}` })
    }
    return sendProblem(reply, 404, { code: 'ROUTE_NOT_FOUND', detail: `No route ${request.method} ${path}` })
  })

  app.setErrorHandler((err: FastifyError, request, reply) => {
    if (err instanceof ValidationError) {
      return sendProblem(reply, 400, { code: err.code, detail: err.message, errors: err.errors })
    }
    if (err.validation) {
      return sendProblem(reply, 400, { code: 'VALIDATION', detail: 'The request does not match the schema', errors: fieldErrors(err) })
    }
    if (isUnavailable(err)) {
      request.log.warn({ err }, 'dependency unavailable')
      reply.header('retry-after', '5')
      return sendProblem(reply, 503, { code: 'UNAVAILABLE', detail: 'A backing service is unavailable; try again later' })
    }
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500
    if (status === 503 && !reply.hasHeader('retry-after')) reply.header('retry-after', '5')
    if (status >= 500) {
      request.log.error({ err }, 'request failed')
      const detail = status === 503 ? err.message : `The request failed; quote request id ${request.id} when reporting it`
      return sendProblem(reply, status, { code: status === 503 ? err.code : 'INTERNAL', detail })
    }
    if (err instanceof SyntaxError) {
      return sendProblem(reply, 400, { code: 'MALFORMED_JSON', detail: 'The body is not valid JSON' })
    }
    return sendProblem(reply, status, { code: err.code, detail: err.message })
  })
}, { name: 'problem-details' })
