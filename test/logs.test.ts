import t from 'tap'
import { waitFor } from './helpers/harness.ts'
import { spawnService } from './helpers/fault-services.ts'
import { createTestDatabase, deletePrefixKeys, serviceEndpoints, uniqueName } from './helpers/services.ts'

type Line = Record<string, unknown>

function jsonLines (text: string): Line[] {
  return text.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Line)
}

t.test('API and worker log JSON lines with request id, tenant, task id, type, queue and attempt; one worker line per attempt outcome', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const { redisUrl } = await serviceEndpoints()
  const prefix = uniqueName('tllog')
  t.teardown(() => deletePrefixKeys(redisUrl, prefix))
  const key = 'acme-log-test-key-0123456789'
  const env = {
    DATABASE_URL: database.url, REDIS_URL: redisUrl, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0',
    TASKLANE_QUEUE_PREFIX: prefix, TASKLANE_API_KEYS: `acme:${key}`, LOG_LEVEL: 'info',
  }
  let port = 0
  const api = await spawnService(t, 'services/api/server.ts', env, (line) => {
    const at = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line.msg))
    if (at) port = Number(at[1])
    return line.msg === 'metrics listener started'
  })
  const worker = await spawnService(t, 'services/worker/main.ts', env, (line) => line.msg === 'worker started')
  const base = `http://127.0.0.1:${port}`
  const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json' }
  // Bootstrap keys are stored just after start: wait until the key is accepted.
  await waitFor(async () => (await fetch(`${base}/v1/tasks?limit=1`, { headers })).status === 200, 10_000, 100)

  const post = async (body: unknown, requestId: string) => {
    const res = await fetch(`${base}/v1/tasks`, { method: 'POST', headers: { ...headers, 'x-request-id': requestId }, body: JSON.stringify(body) })
    t.equal(res.status, 202)
    return (await res.json() as { id: string }).id
  }
  const ok = await post({ type: 'echo', payload: { hello: 1 } }, 'log-req-create')
  const bad = await post({ type: 'sleep', payload: { ms: 5_000 }, timeoutMs: 50, maxAttempts: 2, backoff: { type: 'fixed', delayMs: 10 } }, 'log-req-create-2')
  await waitFor(async () => {
    const states = await Promise.all([ok, bad].map(async (id) => (await (await fetch(`${base}/v1/tasks/${id}`, { headers })).json() as { status: string }).status))
    return states.every((s) => s === 'completed' || s === 'failed')
  }, 20_000, 100)
  const read = await fetch(`${base}/v1/tasks/${ok}`, { headers: { ...headers, 'x-request-id': 'log-req-read' } })
  t.equal(read.status, 200)
  const apiLines = await waitFor(async () => {
    const lines = jsonLines(api.stdout())
    return lines.some((l) => l.reqId === 'log-req-read' && l.msg === 'request completed') ? lines : undefined
  }, 5_000)
  // Log lines reach stdout in blocks, within a quarter second: wait for the three outcomes.
  const workerLines = await waitFor(async () => {
    const lines = jsonLines(worker.stdout())
    return lines.filter((l) => l.outcome !== undefined).length >= 3 ? lines : undefined
  }, 5_000)

  for (const line of [...apiLines, ...workerLines]) {
    t.type(line.level, 'number')
    t.type(line.time, 'string')
  }
  t.ok(apiLines.every((l) => l.service === 'tasklane-api') && workerLines.every((l) => l.service === 'tasklane-worker'), 'every line names its service')

  const completed = (reqId: string) => apiLines.find((l) => l.reqId === reqId && l.msg === 'request completed')
  t.match(completed('log-req-create'), { reqId: 'log-req-create', tenant: 'acme', taskId: ok, res: { statusCode: 202 } }, 'creation: request id, tenant and the new task id')
  t.match(completed('log-req-read'), { reqId: 'log-req-read', tenant: 'acme', taskId: ok, res: { statusCode: 200 } }, 'a task route: request id, tenant and task id')
  t.match(completed('log-req-read'), { req: { method: 'GET', url: `/v1/tasks/${ok}` } }, 'the access line carries the request too')
  t.equal(apiLines.filter((l) => l.reqId === 'log-req-read').length, 1, 'one line per request')
  t.notOk(JSON.stringify(apiLines).includes(key), 'the API key is never logged')

  const outcomes = workerLines.filter((l) => l.outcome !== undefined)
  t.same(outcomes.map((l) => [l.taskId, l.attempt, l.outcome]).sort(), [[ok, 1, 'completed'], [bad, 1, 'retried'], [bad, 2, 'failed']].sort(),
    'one line per attempt outcome')
  for (const line of outcomes) {
    t.match(line, { type: String, queue: 'default', durationMs: Number }, `${line.outcome}: type, queue and duration`)
  }
})
