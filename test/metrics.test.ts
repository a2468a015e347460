import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import type { Logger } from '../services/core/log.ts'
import { createMetricsListener } from '../services/api/metrics-listener.ts'
import { registerQueueMetrics } from '../services/core/metrics/queue-metrics.ts'
import { startHarness, waitFor } from './helpers/harness.ts'
import { parseMetrics, promtoolCheckMetrics, scrape, select, sum, type Sample } from './helpers/prom-text.ts'

const QUEUE_STATES = ['waiting', 'prioritized', 'delayed', 'active', 'failed', 'paused']
const DEFAULT_METRICS = ['process_cpu_user_seconds_total', 'process_resident_memory_bytes', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds_count']

type Harness = Awaited<ReturnType<typeof startHarness>>

async function apiMetricsUrl (t: Test, h: Harness): Promise<string> {
  const listener = createMetricsListener({ registry: h.deps.metrics.registry })
  const port = await listener.listen(0, '127.0.0.1')
  t.teardown(() => listener.close())
  return `http://127.0.0.1:${port}/metrics`
}

function checkQueueGauges (t: Test, samples: Sample[], queues: string[], where: string) {
  for (const queue of queues) {
    for (const state of QUEUE_STATES) {
      t.equal(select(samples, 'tasklane_queue_jobs', { queue, state }).length, 1, `${where}: tasklane_queue_jobs{queue="${queue}",state="${state}"}`)
    }
    t.equal(select(samples, 'tasklane_queue_backlog', { queue }).length, 1, `${where}: tasklane_queue_backlog{queue="${queue}"}`)
    t.equal(select(samples, 'tasklane_queue_oldest_ready_seconds', { queue }).length, 1, `${where}: tasklane_queue_oldest_ready_seconds{queue="${queue}"}`)
  }
}

t.test('API and worker /metrics carry every contract metric, and the counters add up to the tasks sent', async (t) => {
  const server = createServer((req, res) => {
    res.writeHead(req.url === '/ok' ? 200 : 404, { 'content-type': 'application/json' }).end('{}')
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`

  const h = await startHarness(t, { env: { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })
  const apiUrl = await apiMetricsUrl(t, h)
  const worker = await h.startWorker({ TASKLANE_QUEUES: 'default:4,http:3' })
  const workerUrl = `http://127.0.0.1:${worker.opsPort}/metrics`

  const backoff = { type: 'fixed', delayMs: 20 }
  const sent = [
    ...Array.from({ length: 5 }, (_, i) => ({ type: 'echo', payload: { i } })),
    // Times out on both attempts: one retried, then failed.
    ...Array.from({ length: 2 }, () => ({ type: 'sleep', payload: { ms: 5_000 }, timeoutMs: 50, maxAttempts: 2, backoff })),
    // 404 is not retried: failed at once.
    ...Array.from({ length: 2 }, () => ({ type: 'http', payload: { method: 'GET', url: `${base}/missing` }, backoff })),
    { type: 'http', payload: { method: 'GET', url: `${base}/ok` } },
  ]
  const ids: string[] = []
  for (const body of sent) ids.push((await h.createTask(body)).id)
  const replayKey = { 'idempotency-key': 'metrics-replay' }
  ids.push((await h.createTask({ type: 'echo', payload: {} }, replayKey)).id)
  await h.createTask({ type: 'echo', payload: {} }, replayKey) // a replay creates nothing
  const rejected = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'nope', payload: {} } })
  t.equal(rejected.statusCode, 422)
  t.equal((await h.app.inject({ url: `/v1/tasks/${ids[0]}` })).statusCode, 200)
  t.equal((await h.app.inject({ url: '/v1/no-such-route' })).statusCode, 404)

  const done = await h.waitForTerminal(ids)
  const statuses = done.map((task) => task.status)
  t.same(statuses.filter((s) => s === 'completed').length, 7, 'echo x6 and http/ok completed')
  t.same(statuses.filter((s) => s === 'failed').length, 4, 'sleeps and http/missing failed')
  const attempts = done.reduce((n, task) => n + task.attempts, 0)

  // The outcome is counted just after Postgres records it: wait until every attempt is in.
  const workerSamples = await waitFor(async () => {
    const samples = parseMetrics(await scrape(workerUrl))
    return sum(samples, 'tasklane_tasks_finished_total') >= attempts ? samples : undefined
  })
  const apiText = await scrape(apiUrl)
  const apiSamples = parseMetrics(apiText)

  // API: created, by type and queue, replays and rejects not counted.
  t.equal(sum(apiSamples, 'tasklane_tasks_created_total', { type: 'echo', queue: 'default' }), 6)
  t.equal(sum(apiSamples, 'tasklane_tasks_created_total', { type: 'sleep', queue: 'default' }), 2)
  t.equal(sum(apiSamples, 'tasklane_tasks_created_total', { type: 'http', queue: 'http' }), 3)
  t.equal(sum(apiSamples, 'tasklane_tasks_created_total'), ids.length)

  // API: request durations by route pattern and status code; never a raw URL.
  t.equal(sum(apiSamples, 'http_request_duration_seconds_count', { method: 'POST', route: '/v1/tasks', status_code: '202' }), ids.length)
  t.equal(sum(apiSamples, 'http_request_duration_seconds_count', { method: 'POST', route: '/v1/tasks', status_code: '200' }), 1, 'the replay')
  t.equal(sum(apiSamples, 'http_request_duration_seconds_count', { method: 'POST', route: '/v1/tasks', status_code: '422' }), 1)
  t.equal(sum(apiSamples, 'http_request_duration_seconds_count', { method: 'GET', route: '/v1/tasks/:id', status_code: '200' }), 1 + done.length)
  t.equal(sum(apiSamples, 'http_request_duration_seconds_count', { route: 'unmatched', status_code: '404' }), 1)
  t.ok(select(apiSamples, 'http_request_duration_seconds_bucket', { route: '/v1/tasks', le: '+Inf' }).length > 0, 'a histogram')
  const routes = new Set(select(apiSamples, 'http_request_duration_seconds_count').map((s) => s.labels.route))
  t.notOk([...routes].some((r) => ids.some((id) => r?.includes(id)) || r?.includes('no-such-route')), `route labels are patterns: ${[...routes].join(' ')}`)

  // Worker: outcomes by type and queue; every attempt counted once.
  const finished = (labels: Record<string, string>) => sum(workerSamples, 'tasklane_tasks_finished_total', labels)
  t.equal(finished({ type: 'echo', queue: 'default', outcome: 'completed' }), 6)
  t.equal(finished({ type: 'sleep', queue: 'default', outcome: 'retried' }), 2)
  t.equal(finished({ type: 'sleep', queue: 'default', outcome: 'failed' }), 2)
  t.equal(finished({ type: 'http', queue: 'http', outcome: 'failed' }), 2)
  t.equal(finished({ type: 'http', queue: 'http', outcome: 'completed' }), 1)
  t.equal(finished({ outcome: 'cancelled' }), 0)
  t.equal(select(workerSamples, 'tasklane_tasks_finished_total', { outcome: 'cancelled' }).length, 3, 'zero series exist for every type')
  t.equal(finished({}), attempts, 'one outcome per attempt')
  t.equal(finished({ outcome: 'completed' }) + finished({ outcome: 'failed' }) + finished({ outcome: 'cancelled' }),
    sum(apiSamples, 'tasklane_tasks_created_total'), 'every created task finished exactly once')
  for (const outcome of ['completed', 'failed', 'retried']) {
    t.equal(sum(workerSamples, 'tasklane_task_duration_seconds_count', { outcome }), finished({ outcome }), `duration observed per ${outcome} attempt`)
  }
  t.equal(sum(workerSamples, 'tasklane_task_duration_seconds_bucket', { type: 'sleep', outcome: 'failed', le: '+Inf' }), 2)
  t.equal(sum(workerSamples, 'tasklane_task_wait_seconds_count'), attempts, 'a wait observed per attempt started')
  t.equal(sum(workerSamples, 'tasklane_task_wait_seconds_count', { type: 'http', queue: 'http' }), 3)
  t.same(select(workerSamples, 'tasklane_worker_concurrency').map((s) => [s.labels.queue, s.value]).sort(), [['default', 4], ['http', 3]])
  t.same(select(workerSamples, 'tasklane_worker_active_tasks').map((s) => [s.labels.queue, s.value]).sort(), [['default', 0], ['http', 0]])

  // Both: the queue gauges, drained now, and the process defaults.
  for (const [where, samples] of [['api', apiSamples], ['worker', workerSamples]] as const) {
    checkQueueGauges(t, samples, ['default', 'http'], where)
    t.equal(sum(samples, 'tasklane_queue_backlog'), 0, `${where}: nothing left to run`)
    for (const name of DEFAULT_METRICS) t.ok(select(samples, name).length > 0, `${where}: ${name}`)
  }

  for (const [where, text] of [['api', apiText], ['worker', await scrape(workerUrl)]]) {
    const check = promtoolCheckMetrics(text!)
    t.equal(check.status, 0, `promtool check metrics finds no problem in the ${where} output: ${check.output}`)
  }
})

t.test('queue gauges read BullMQ at scrape time in one round trip: states, backlog, paused and the oldest ready task', async (t) => {
  const h = await startHarness(t)
  // A connection of its own, to count what one scrape sends to Redis.
  const redis = new Redis(h.config.REDIS_URL, { lazyConnect: true })
  await redis.connect()
  t.teardown(() => redis.disconnect())
  let commands = 0
  const send = redis.sendCommand.bind(redis)
  redis.sendCommand = ((...args: Parameters<typeof send>) => { commands++; return send(...args) }) as typeof send
  const registry = new Registry()
  registerQueueMetrics({ registry, redis, prefix: h.config.TASKLANE_QUEUE_PREFIX, queues: () => ['default', 'http'], log: h.app.log as unknown as Logger })
  const read = async () => parseMetrics(await registry.metrics())

  let samples = await read()
  t.equal(commands, 1, 'one round trip for every queue gauge')
  t.equal(sum(samples, 'tasklane_queue_jobs'), 0)
  t.same(select(samples, 'tasklane_queue_oldest_ready_seconds').map((s) => s.value), [0, 0])

  for (let i = 0; i < 3; i++) await h.createTask({ type: 'echo', payload: { i }, priority: i === 0 ? 'low' : 'high' })
  await h.createTask({ type: 'echo', payload: {}, delayMs: 600_000 })
  await h.deps.queues.get('http').pause()
  await h.createTask({ type: 'http', payload: { method: 'GET', url: 'https://example.invalid/' } })
  await sleep(1_100)

  commands = 0
  samples = await read()
  t.equal(commands, 1, 'still one round trip, not one per queue or gauge')
  const jobs = (queue: string, state: string) => sum(samples, 'tasklane_queue_jobs', { queue, state })
  t.equal(jobs('default', 'prioritized'), 3, 'every Tasklane job carries a priority')
  t.equal(jobs('default', 'delayed'), 1)
  t.equal(jobs('default', 'waiting'), 0)
  t.equal(jobs('default', 'active'), 0)
  t.equal(jobs('default', 'paused'), 0, 'default is not paused')
  t.equal(jobs('http', 'prioritized'), 1)
  t.equal(jobs('http', 'paused'), 1, 'the ready jobs of a paused queue')
  t.equal(sum(samples, 'tasklane_queue_backlog', { queue: 'default' }), 3, 'delayed is not backlog')
  t.equal(sum(samples, 'tasklane_queue_backlog', { queue: 'http' }), 1)
  t.equal(sum(samples, 'tasklane_queue_paused', { queue: 'http' }), 1)
  t.equal(sum(samples, 'tasklane_queue_paused', { queue: 'default' }), 0)
  const oldest = sum(samples, 'tasklane_queue_oldest_ready_seconds', { queue: 'default' })
  t.ok(oldest >= 1 && oldest < 60, `the oldest ready default task waits since creation (${oldest}s), across priority levels`)

  // No cache: the next scrape sees a change at once.
  await h.deps.queues.get('http').resume()
  await h.createTask({ type: 'echo', payload: {} })
  samples = await read()
  t.equal(sum(samples, 'tasklane_queue_backlog', { queue: 'default' }), 4)
  t.equal(sum(samples, 'tasklane_queue_jobs', { queue: 'http', state: 'paused' }), 0)

  // Redis gone: the gauges are empty for that scrape, not stale, and the scrape still answers.
  redis.disconnect()
  samples = await read()
  t.equal(select(samples, 'tasklane_queue_backlog').length, 0)
})
