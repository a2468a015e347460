import AjvCompiler from '@fastify/ajv-compiler'
import Fastify, { type FastifyBaseLogger, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { randomUUID } from 'node:crypto'
import type { Logger } from '../core/log.ts'
import { AccessLog } from './access-log.ts'
import app from './app.ts'
import { sendProblem } from './plugins/problem-details.ts'
import type { AppDeps } from './app-deps.ts'
import { createClientErrorHandler } from './client-error.ts'

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/

/** TASKLANE_TRUST_PROXY as Fastify's trustProxy: off, any proxy, or the proxies' addresses. */
const trustProxy = (value: string): FastifyServerOptions['trustProxy'] =>
  value === '' || value === 'false' ? false : value === 'true' ? true : value

// The compiler's published types describe its compile function as Ajv's; it takes a route.
type CompileRoute = (route: { schema: unknown, httpPart?: string }) => unknown
type CompilerOptions = { customOptions?: Record<string, unknown> }
const ajvCompilers = AjvCompiler() as unknown as (externalSchemas: unknown, options: CompilerOptions) => CompileRoute

/** Fastify's Ajv compiler twice: coercing types for query strings, parameters and headers, strict for bodies. */
function coercingOnlyOutsideBodies (externalSchemas: unknown, options: CompilerOptions = {}): CompileRoute {
  const coercing = ajvCompilers(externalSchemas, options)
  const strict = ajvCompilers(externalSchemas, { ...options, customOptions: { ...options.customOptions, coerceTypes: false } })
  return (route) => (route.httpPart === 'body' ? strict : coercing)(route)
}

/** A Fastify instance with Tasklane's server options and the app registered; not listening. */
export async function buildServer (deps: AppDeps, log: Logger): Promise<FastifyInstance> {
  const server = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new AccessLog(),
    bodyLimit: deps.config.TASKLANE_BODY_LIMIT_BYTES,
    requestIdHeader: 'x-request-id',
    // A caller's request id is kept only when it is a sane token; anything else is replaced.
    genReqId: (req) => {
      const given = req.headers['x-request-id']
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID()
    },
    // Validation stops at the first error (allErrors would build one error per offending field
    // of a 10 MB batch); query strings and parameters are coerced from text, bodies never are.
    ajv: { customOptions: { allErrors: false, coerceTypes: 'array', removeAdditional: false } },
    schemaController: { compilersFactory: { buildValidator: coercingOnlyOutsideBodies as never } },
    // A client that sends slowly is cut off (408); an idle socket closes (see the README on the
    // proxy in front). Node checks for overdue requests every connectionsCheckingInterval.
    requestTimeout: deps.config.TASKLANE_REQUEST_TIMEOUT_MS,
    connectionTimeout: deps.config.TASKLANE_CONNECTION_TIMEOUT_MS,
    http: {
      headersTimeout: Math.min(60_000, deps.config.TASKLANE_REQUEST_TIMEOUT_MS || 60_000),
      connectionsCheckingInterval: Math.min(30_000, Math.max(100, Math.floor((deps.config.TASKLANE_REQUEST_TIMEOUT_MS || 60_000) / 4))),
    },
    clientErrorHandler: createClientErrorHandler(log as FastifyBaseLogger),
    routerOptions: { maxParamLength: 200 },
    return503OnClosing: true,
    trustProxy: trustProxy(deps.config.TASKLANE_TRUST_PROXY),
    // A URL the router cannot decode or a parameter over maxParamLength: still a problem document.
    // Such a request never reaches the hooks that write its access line (access-log.ts).
    frameworkErrors: (err, request, reply) => {
      const statusCode = err.statusCode ?? 400
      request.log.info({ req: request, res: { statusCode }, code: err.code }, 'request rejected before routing')
      return sendProblem(reply, statusCode, { code: err.code, detail: err.message })
    },
  })
  server.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id)
    // A draining process tells keep-alive clients to take their next request elsewhere.
    if (deps.readiness.isDraining()) reply.header('connection', 'close')
  })
  await server.register(app, deps)
  return server
}
