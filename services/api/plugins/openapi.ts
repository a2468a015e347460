import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import type { OpenAPIV3_1 } from 'openapi-types'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { problems } from '../schemas/problem-schema.ts'

/** Route-schema problem responses as OpenAPI: a header's JSON schema becomes `{ description, schema }`, the ref a pointer. */
function asOpenApi (responses: ReturnType<typeof problems>) {
  return Object.fromEntries(Object.entries(responses).map(([status, { headers, description }]) => [status, {
    description,
    content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } },
    ...(headers ? { headers: Object.fromEntries(Object.entries(headers).map(([name, { description, type }]) => [name, { description, schema: { type } }])) } : {}),
  }]))
}

const HTML_PAGE = (operationId: string, summary: string, description: string, security: unknown[] | undefined, statuses: number[]) => ({
  get: {
    operationId, summary, description, security,
    tags: ['meta'],
    responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: { type: 'string' } } } }, ...asOpenApi(problems(...statuses)) },
  },
})

// The document's version is the package's: one number to bump, in package.json.
const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

const TAGS = [
  { name: 'tasks', description: 'Create, read, follow, cancel, retry and delete tasks' },
  { name: 'task types', description: 'The kinds of task this service runs, with their payload schema and defaults' },
  { name: 'schedules', description: 'Recurring tasks: cron with time zones, exactly one task per due time' },
  { name: 'notifications', description: 'Endpoints Tasklane POSTs to when tasks end, signed per Standard Webhooks, and the log of each delivery' },
  { name: 'pull workers', description: 'Your own processes lease tasks of your pull types, heartbeat, complete and fail them' },
  { name: 'tenants', description: 'A tenant\'s limits (concurrency per queue, creations per minute, retention) and usage; needs the admin key' },
  { name: 'webhook callbacks', description: 'A webhook executor that answered 202 completes, fails or reports on its attempt later, with the token Tasklane sent it' },
  { name: 'queues', description: 'Queue counts and statistics; pausing and resuming a queue needs the admin key' },
  { name: 'health', description: 'Liveness and readiness probes, without a key' },
  { name: 'meta', description: 'This document, its browsable reference and the operators\' dashboard' },
]

/** `anyOf` of string constants (how TypeBox writes a union of literals) as the one `enum` client generators read. */
function constUnionsAsEnums (node: unknown): unknown {
  if (Array.isArray(node)) return node.map(constUnionsAsEnums)
  if (node === null || typeof node !== 'object') return node
  const object = node as Record<string, unknown>
  // @fastify/swagger has already written each `const` as a one-value `enum`.
  const single = (s: { const?: unknown, enum?: unknown[] }): unknown => s.const ?? (s.enum?.length === 1 ? s.enum[0] : undefined)
  const anyOf = object.anyOf
  if (Array.isArray(anyOf) && anyOf.length > 0 && anyOf.every((s) => typeof single(s) === 'string')) {
    const { anyOf: _anyOf, ...rest } = object
    return { ...rest, type: 'string', enum: anyOf.map(single) }
  }
  return Object.fromEntries(Object.entries(object).map(([k, v]) => [k, constUnionsAsEnums(v)]))
}

/**
 * Collects every route schema into the OpenAPI 3.1 document served at /openapi.json, and
 * serves a browsable reference of it at /docs. Pages that are not JSON routes (the docs and
 * the queue dashboard) are described by hand, so the document names every public path.
 */
export default fp(async function openapi (app: FastifyInstance) {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Tasklane',
        version,
        description: 'Hand slow or unreliable work to a durable queue over HTTP and read the result later.',
        license: { name: 'MIT', identifier: 'MIT' },
        contact: { name: 'Tasklane maintainers' },
      },
      // Relative: the document describes whichever host serves it.
      servers: [{ url: '/', description: 'The server that serves this document' }],
      tags: TAGS,
      components: {
        securitySchemes: {
          apiKey: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <api key>' },
          adminKey: { type: 'http', scheme: 'bearer', description: 'Authorization: Bearer <TASKLANE_ADMIN_KEY> (Basic with any user name in a browser)' },
        },
      },
      security: [{ apiKey: [] }],
    },
    refResolver: { buildLocalReference: (json, _baseUri, _fragment, i) => String(json.$id ?? `def-${i}`) },
    transformObject: (document) => {
      if (!('openapiObject' in document)) return document.swaggerObject
      const openapiObject = document.openapiObject as OpenAPIV3_1.Document
      return constUnionsAsEnums({
        ...openapiObject,
        paths: {
          ...openapiObject.paths,
          '/docs': HTML_PAGE('getDocs', 'This reference, browsable', 'A browsable reference of /openapi.json.', [], [429, 503]),
          '/admin/queues': HTML_PAGE('getQueueDashboard', 'The queue dashboard (bull-board)', 'Every queue and its jobs, read-only. Operators only.', [{ adminKey: [] }], [401, 429, 503]),
        },
      }) as OpenAPIV3_1.Document
    },
  })
  // `urls` rather than `url`, which the plugin overrides with its own /docs/json: the page reads
  // the document clients are pointed at.
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { deepLinking: true, urls: [{ url: '/openapi.json', name: 'Tasklane API' }] },
    theme: { title: 'Tasklane API' },
  })
  app.get('/openapi.json', {
    schema: {
      tags: ['meta'], operationId: 'getOpenApiDocument', summary: 'This OpenAPI 3.1 document', security: [],
      description: 'The document client generators read; it describes every public route.',
      response: { 200: { description: 'The OpenAPI document', type: 'object', additionalProperties: true }, ...problems(429, 503) },
    },
  }, async () => app.swagger())
}, { name: 'openapi' })
