import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import type { InjectOptions } from 'fastify'
import t from 'tap'
import { PROBLEM_CODES, problemType, type ProblemCode } from '../services/api/problem-codes.ts'
import { startHarness } from './helpers/harness.ts'

const run = promisify(execFile)
const root = fileURLToPath(new URL('..', import.meta.url))
const bin = (name: string) => join(root, 'node_modules/.bin', name)
const PROBES = new Set(['/healthz', '/readyz'])

type Operation = { operationId?: string, security?: unknown[], responses: Record<string, { headers?: Record<string, unknown> }> }

t.test('Redocly (recommended) and Spectral (spectral:oas) pass on /openapi.json with the committed rulesets', async (t) => {
  const h = await startHarness(t)
  const doc = (await h.app.inject({ url: '/openapi.json' })).json()
  const dir = await mkdtemp(join(tmpdir(), 'tasklane-lint-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'openapi.json')
  await writeFile(file, JSON.stringify(doc))

  const [redocly, spectral] = await Promise.all([
    run(bin('redocly'), ['lint', file, '--config', join(root, 'redocly.yaml'), '--format', 'stylish'], { env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } })
      .then((r) => ({ code: 0, out: r.stdout + r.stderr }), (e: { code: number, stdout: string, stderr: string }) => ({ code: e.code, out: e.stdout + e.stderr })),
    run(bin('spectral'), ['lint', file, '--ruleset', join(root, '.spectral.yaml'), '--fail-severity', 'warn'])
      .then((r) => ({ code: 0, out: r.stdout }), (e: { code: number, stdout: string }) => ({ code: e.code, out: e.stdout })),
  ])
  t.equal(redocly.code, 0, 'redocly lint passes')
  t.notMatch(redocly.out, /warning|error/, redocly.out)
  t.equal(spectral.code, 0, `spectral lint passes with no warning: ${spectral.out}`)
})

t.test('every operation is named, declares what it answers, and the admin routes ask for the admin key', async (t) => {
  const h = await startHarness(t)
  const doc = (await h.app.inject({ url: '/openapi.json' })).json()
  t.ok(doc.servers?.length > 0, 'servers')
  const tags = new Map<string, string>(doc.tags.map((tag: { name: string, description: string }) => [tag.name, tag.description]))
  const ids = new Set<string>()
  for (const [path, item] of Object.entries(doc.paths as Record<string, Record<string, Operation & { tags: string[] }>>)) {
    for (const [method, op] of Object.entries(item)) {
      const where = `${method.toUpperCase()} ${path}`
      t.ok(op.operationId && !ids.has(op.operationId), `${where} has its own operationId`)
      ids.add(op.operationId!)
      for (const tag of op.tags) t.ok(tags.get(tag), `${where}: tag "${tag}" is declared with a description`)
      t.notOk(op.responses['403'], `${where} declares no 403 (none is ever sent)`)
      if (PROBES.has(path)) continue
      t.ok(op.responses['503']?.headers?.['Retry-After'], `${where} declares 503 with Retry-After (load shedding)`)
      if (path.startsWith('/v1') || path.startsWith('/admin')) t.ok(op.responses['401'], `${where} declares 401`)
      if (path.includes('{')) t.ok(op.responses['400'], `${where} declares 400 (a parameter over its length)`)
    }
  }
  for (const path of ['/v1/queues/{name}/pause', '/v1/queues/{name}/resume']) {
    t.same(doc.paths[path].post.security, [{ adminKey: [] }], `${path} needs the admin key`)
  }
  const created = doc.paths['/v1/tasks'].post.responses
  t.ok(created['202'].headers.Location && created['202'].headers['X-RateLimit-Remaining'] && created['429'].headers['Retry-After'])
  const limit = doc.paths['/v1/tasks'].get.parameters.find((p: { name: string }) => p.name === 'limit')
  t.match(limit, { required: false, schema: { default: 50 } }, 'limit is optional, with its default')
  t.same(doc.components.schemas.Problem.properties.code.enum, Object.keys(PROBLEM_CODES), 'Problem.code is the documented set')
})

t.test('every problem the API sends carries a documented code, its type, and request-rooted paths', async (t) => {
  const h = await startHarness(t)
  const id = '0193b5a2-7c1e-7d3a-9f4b-2e8c6a1d0f57'
  const json = { 'content-type': 'application/json' }
  const cases: { name: string, request: InjectOptions, code: ProblemCode, path?: string }[] = [
    { name: 'malformed JSON', request: { method: 'POST', url: '/v1/tasks', headers: json, payload: '{"type":' }, code: 'MALFORMED_JSON' },
    { name: 'cancel with an empty JSON body', request: { method: 'POST', url: `/v1/tasks/${id}/cancel`, headers: json, payload: '' }, code: 'MALFORMED_JSON' },
    { name: 'a body that is not JSON', request: { method: 'POST', url: '/v1/tasks', headers: { 'content-type': 'text/csv' }, payload: 'a,b' }, code: 'UNSUPPORTED_MEDIA_TYPE' },
    { name: 'a body schema violation', request: { method: 'POST', url: '/v1/tasks', payload: { type: 'echo', maxAttempts: 0 } }, code: 'VALIDATION', path: '/maxAttempts' },
    { name: 'a payload schema violation', request: { method: 'POST', url: '/v1/tasks', payload: { type: 'sleep', payload: { ms: -1 } } }, code: 'VALIDATION', path: '/payload/ms' },
    { name: 'a query violation', request: { url: '/v1/tasks?limit=0' }, code: 'VALIDATION', path: '/querystring/limit' },
    { name: 'a cursor this API never sent', request: { url: '/v1/tasks?cursor=bm9wZQ' }, code: 'VALIDATION', path: '/querystring/cursor' },
    { name: 'an id over its length', request: { url: `/v1/tasks/${'a'.repeat(65)}` }, code: 'VALIDATION', path: '/params/id' },
    { name: 'an unknown type', request: { method: 'POST', url: '/v1/tasks', payload: { type: 'nope' } }, code: 'UNKNOWN_TASK_TYPE' },
    { name: 'an unknown task', request: { url: `/v1/tasks/${id}` }, code: 'TASK_NOT_FOUND' },
    { name: 'an unknown route', request: { url: '/v1/nothing' }, code: 'ROUTE_NOT_FOUND' },
    { name: 'a wrong method', request: { method: 'PUT', url: '/v1/tasks' }, code: 'METHOD_NOT_ALLOWED' },
  ]
  for (const c of cases) {
    const res = await h.app.inject(c.request)
    const problem = res.json()
    t.match(res.headers['content-type'], /^application\/problem\+json/, `${c.name}: a problem document`)
    t.equal(problem.code, c.code, `${c.name}: ${c.code}`)
    t.equal(problem.type, problemType(c.code), `${c.name}: the type of that code`)
    t.notMatch(JSON.stringify(problem), /FST_/, `${c.name}: no framework code`)
    if (c.path) t.ok(problem.errors.some((e: { path: string }) => e.path === c.path), `${c.name}: path ${c.path} (${JSON.stringify(problem.errors)})`)
  }
})
