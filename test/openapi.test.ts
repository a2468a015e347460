import SwaggerParser from '@apidevtools/swagger-parser'
import t from 'tap'
import { startHarness } from './helpers/harness.ts'

// Mounted UIs (Swagger UI's assets, bull-board's pages and JSON API) are described by the
// page they hang from; everything else must appear in the document as itself.
const MOUNTS = ['/docs', '/admin/queues']

/** Every [method, path] the server registered, from Fastify's own route tree. */
function registeredRoutes (tree: string): [string, string][] {
  const stack: string[] = []
  const routes: [string, string][] = []
  for (const line of tree.split('\n')) {
    const match = /^([│ ]*)[├└]── (.+?) \(([A-Z, ]+)\)$/.exec(line)
    if (!match) continue
    const depth = match[1]!.length / 4
    const path = (stack[depth - 1] ?? '') + match[2]
    stack[depth] = path
    stack.length = depth + 1
    for (const method of match[3]!.split(', ')) routes.push([method, path])
  }
  return routes
}

t.test('/openapi.json is a valid OpenAPI 3.1 document describing every route the server registers', async (t) => {
  const h = await startHarness(t)
  const res = await h.app.inject({ url: '/openapi.json' })
  t.equal(res.statusCode, 200)
  const doc = res.json()
  t.equal(doc.openapi, '3.1.0')
  // The validator dereferences in place: give it a copy.
  await t.resolves(SwaggerParser.validate(structuredClone(doc)), 'valid according to @apidevtools/swagger-parser')

  const routes = registeredRoutes(h.app.printRoutes({ commonPrefix: false }))
  t.ok(routes.length > 20, `found ${routes.length} routes`)
  const missing: string[] = []
  for (const [method, path] of routes) {
    if (method === 'HEAD') continue // Fastify adds HEAD to every GET
    const mount = MOUNTS.find((m) => path === m || path.startsWith(`${m}/`))
    const documented = mount ?? path.replace(/\/$/, '').replace(/:([A-Za-z]+)/g, '{$1}')
    const entry = doc.paths[documented]?.[mount ? 'get' : method.toLowerCase()]
    if (!entry) missing.push(`${method} ${path}`)
  }
  t.same(missing, [], 'no route is missing from the document')

  for (const path of ['/v1/tasks/{id}/cancel', '/v1/tasks/{id}/retry', '/v1/tasks/batch', '/v1/queues/{name}/pause']) {
    const op = doc.paths[path].post
    t.ok(op.summary, `${path} has a summary`)
    t.ok(Object.keys(op.responses).some((s) => s.startsWith('4')), `${path} lists its problem responses`)
  }
  t.match(doc.paths['/v1/tasks/{id}'].delete.responses, { 204: {}, 409: { content: { 'application/problem+json': { schema: { $ref: '#/components/schemas/Problem' } } } } })
  t.ok(doc.paths['/v1/tasks/{id}/events'].get.responses[200].content['text/event-stream'], 'the event stream is text/event-stream')
  t.ok(doc.components.schemas.Task && doc.components.schemas.Problem && doc.components.schemas.Queue)
})

t.test('/docs serves a browsable reference of the document', async (t) => {
  const h = await startHarness(t)
  const page = await h.app.inject({ url: '/docs/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /text\/html/)
  t.match(page.body, /<title>Tasklane API<\/title>/, 'named for what it is')
  const initializer = await h.app.inject({ url: '/docs/static/swagger-initializer.js' })
  t.match(initializer.body, /"url":"\/openapi\.json"/, 'the page loads /openapi.json')
  const json = await h.app.inject({ url: '/docs/json' })
  t.equal(json.statusCode, 200)
  t.equal(json.json().openapi, '3.1.0')
})
