import { readFileSync } from 'node:fs'
import swagger from '@fastify/swagger'
import type { OpenAPIV3_1 } from 'openapi-types'
import swaggerUi from '@fastify/swagger-ui'
import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

const HTML_PAGE = (summary: string, description: string, security: unknown[] | undefined) => ({
  get: {
    summary, description, security,
    tags: ['meta'],
    responses: { 200: { description: 'An HTML page', content: { 'text/html': { schema: { type: 'string' } } } } },
  },
})

// The document's version is the package's: one number to bump, in package.json.
const { version } = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }

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
      },
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
      return {
        ...openapiObject,
        paths: {
          ...openapiObject.paths,
          '/docs': HTML_PAGE('This reference, browsable', 'Swagger UI over /openapi.json.', []),
          '/admin/queues': HTML_PAGE('The queue dashboard (bull-board)', 'Every queue and its jobs, read-only. Operators only.', [{ adminKey: [] }]),
        },
      } as OpenAPIV3_1.Document
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
      tags: ['meta'], summary: 'This OpenAPI 3.1 document', security: [],
      response: { 200: { description: 'The OpenAPI document', type: 'object', additionalProperties: true } },
    },
  }, async () => app.swagger())
}, { name: 'openapi' })
