import t from 'tap'
import { waitFor } from './helpers/harness.ts'
import { spawnService, startPrivateRedis, startTcpProxy } from './helpers/fault-services.ts'
import { parseMetrics, select } from './helpers/prom-text.ts'
import { createTestDatabase, serviceEndpoints } from './helpers/services.ts'

type Probe = { status: number, body: { status?: string, checks?: Record<string, string> } }

async function probe (url: string): Promise<Probe> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(5_000) })
    return { status: res.status, body: await res.json() as Probe['body'] }
  } catch (err) {
    return { status: 0, body: { status: String(err) } }
  }
}

t.test('/readyz of API and worker goes 503 while Redis or Postgres does not answer and 200 when it is back; /healthz stays 200', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const redis = await startPrivateRedis(t)
  // Postgres is shared: the processes reach it through a proxy this test can cut.
  const pg = new URL((await serviceEndpoints()).databaseUrl)
  const proxy = await startTcpProxy(t, { host: pg.hostname, port: Number(pg.port || 5432) })
  const dbUrl = new URL(database.url)
  dbUrl.hostname = '127.0.0.1'
  dbUrl.port = String(proxy.port)
  const env = {
    DATABASE_URL: dbUrl.toString(), REDIS_URL: redis.url, HOST: '127.0.0.1', PORT: '0', METRICS_PORT: '0',
    TASKLANE_AUTH: 'disabled', TASKLANE_QUEUE_PREFIX: 'tlready',
  }

  let apiPort = 0
  const api = await spawnService(t, 'services/api/server.ts', env, (line) => {
    const at = /listening at http:\/\/127\.0\.0\.1:(\d+)/.exec(String(line.msg))
    if (at) apiPort = Number(at[1])
    return line.msg === 'metrics listener started'
  })
  const apiMetricsPort = api.line.metricsPort as number
  const worker = await spawnService(t, 'services/worker/main.ts', env, (line) => line.msg === 'worker started')
  const workerPort = worker.line.opsPort as number
  t.ok(apiPort > 0 && apiMetricsPort > 0 && workerPort > 0, `ports: api ${apiPort}, api metrics ${apiMetricsPort}, worker ops ${workerPort}`)
  t.not(apiMetricsPort, apiPort, 'metrics are on their own port')

  const endpoints = [
    { name: 'api', ready: `http://127.0.0.1:${apiPort}/readyz`, live: `http://127.0.0.1:${apiPort}/healthz` },
    { name: 'worker', ready: `http://127.0.0.1:${workerPort}/readyz`, live: `http://127.0.0.1:${workerPort}/healthz` },
  ]
  const allReady = (status: number, failing?: string) => waitFor(async () => {
    for (const e of endpoints) {
      const r = await probe(e.ready)
      if (r.status !== status) return false
      if (failing && r.body.checks?.[failing] === 'ok') return false
    }
    return true
  }, 20_000, 100)
  const expectState = async (phase: string, status: number, failing?: string) => {
    await allReady(status, failing).catch(() => {})
    for (const e of endpoints) {
      const ready = await probe(e.ready)
      t.equal(ready.status, status, `${phase}: ${e.name} /readyz ${status}`)
      if (failing) {
        t.not(ready.body.checks?.[failing], 'ok', `${phase}: ${e.name} names the failing check (${JSON.stringify(ready.body.checks)})`)
        t.equal(ready.body.status, 'unavailable')
      } else {
        t.same(ready.body, { status: 'ok', checks: ready.body.checks }, `${phase}: ${e.name} reports ok`)
      }
      const live = await probe(e.live)
      t.same([live.status, live.body], [200, { status: 'ok' }], `${phase}: ${e.name} /healthz 200`)
    }
  }
  await expectState('at start', 200)
  t.equal((await probe(`http://127.0.0.1:${apiPort}/metrics`)).status, 404, '/metrics is not on the public port')

  await redis.stop()
  await expectState('Redis stopped', 503, 'redis')
  // The metrics listener still answers; the queue gauges are absent rather than stale.
  const duringOutage = await fetch(`http://127.0.0.1:${apiMetricsPort}/metrics`)
  t.equal(duringOutage.status, 200, 'API /metrics answers during a Redis outage')
  t.same(select(parseMetrics(await duringOutage.text()), 'tasklane_queue_backlog'), [], 'no stale queue gauges')

  await redis.start()
  await expectState('Redis back', 200)
  const afterOutage = parseMetrics(await (await fetch(`http://127.0.0.1:${apiMetricsPort}/metrics`)).text())
  t.equal(select(afterOutage, 'tasklane_queue_backlog').length, 2, 'queue gauges are back')

  // A Redis that accepts connections but answers nothing is caught by the probe's timeout.
  redis.freeze()
  await expectState('Redis hung', 503, 'redis')
  redis.thaw()
  await expectState('Redis thawed', 200)

  await proxy.stop()
  await expectState('Postgres unreachable', 503, 'postgres')
  await proxy.start()
  await expectState('Postgres back', 200)
})
