import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { buildServer } from '../services/api/build-server.ts'
import { openApiDeps } from '../services/api/open-deps.ts'
import { startHarness } from './helpers/harness.ts'
import { DRILL_ENV, faultReport, freePort, judge, startPostgresRelay, submitDrillTasks, waitForTerminalCount } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'
import { createTestDatabase, deletePrefixKeys, serviceEndpoints } from './helpers/services.ts'
import { testConfig, testLogger } from './helpers/test-config.ts'

// Short locks and a frequent reconciler: a drill's repairs happen within its wait.
const FAST_RECOVERY = {
  TASKLANE_LOCK_DURATION_MS: '2000',
  TASKLANE_STALLED_INTERVAL_MS: '1000',
  TASKLANE_RECONCILER_INTERVAL_MS: '300',
  TASKLANE_RECONCILER_MIN_AGE_MS: '1000',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '3000',
}

t.test('the worker\'s Postgres connections terminated mid-run: every task completes, each recorded once', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  await h.spawnWorker({
    TASKLANE_QUEUES: 'http:20',
    ...FAST_RECOVERY,
  })
  const tasks = await submitDrillTasks(h, receiver.tasks('pg-', 300, 30, 120))
  let terminated = 0
  for (const after of [30, 120, 220]) {
    await waitForTerminalCount(h.sql, tasks, after, 20_000)
    // Only this test's database, only the worker's sessions (named by application_name).
    const rows = await h.sql<{ ok: boolean }[]>`
      select pg_terminate_backend(pid) as ok from pg_stat_activity
      where datname = current_database() and application_name like 'tasklane-worker:%'`
    terminated += rows.filter((r) => r.ok).length
    await sleep(100)
  }
  t.ok(terminated > 0, `terminated ${terminated} worker backends`)
  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'postgres backends terminated', report)
  // No worker was lost, so a lost attempt here would be a claim re-run after an ambiguous commit.
  t.equal(report.lostAttempts, 0, 'no attempt recorded lost: no worker was lost')
})

t.test('the worker\'s Postgres connections reset again and again while completions are in flight: none is left running', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV })
  // The worker reaches Postgres through a relay that resets its connections (a TCP RST, as a
  // client sees a backend terminated while statements were on their way to it).
  const relay = await startPostgresRelay(t, h.config.DATABASE_URL)
  await h.spawnWorker({
    DATABASE_URL: relay.url,
    TASKLANE_QUEUES: 'http:40',
    // Fewer connections than statements at once: the pool pipelines statements onto busy ones.
    TASKLANE_DB_POOL_SIZE: '3',
    ...FAST_RECOVERY,
  })
  // Short handlers, many at once: every reset cuts claims and completions on the wire, and the
  // batcher's row-by-row retry of a failed batch goes out while the cut connections close.
  const tasks = await submitDrillTasks(h, receiver.tasks('pg-reset-', 600, 5, 30))
  let resets = 0
  const until = Date.now() + 10_000
  while (Date.now() < until && await waitForTerminalCount(h.sql, tasks, tasks.length, 0) < tasks.length) {
    relay.reset()
    resets++
    await sleep(100 + Math.random() * 200)
  }
  t.comment(`reset the worker's connections ${resets} times`)
  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'postgres connections reset in a loop', report)
  t.same(report.notCompleted, {}, 'no task left running (a completion that never landed) or queued')
})

t.test('POST /v1/tasks: 503 storing nothing while Postgres is unreachable; 202 once it is back', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const relay = await startPostgresRelay(t, database.url)
  const { redisUrl } = await serviceEndpoints()
  const config = testConfig(relay.url, redisUrl)
  const deps = openApiDeps(config, testLogger(config, 'tasklane-api'))
  const app = await buildServer(deps, testLogger(config, 'tasklane-api'))
  t.teardown(async () => {
    await app.close()
    await deps.close()
    await deletePrefixKeys(redisUrl, config.TASKLANE_QUEUE_PREFIX)
  })

  await relay.down()
  const res = await app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { n: 1 } } })
  t.equal(res.statusCode, 503)
  t.ok(res.headers['retry-after'], 'with Retry-After')
  t.match(res.headers['content-type'], /application\/problem\+json/)
  t.notMatch(res.body, /127\.0\.0\.1|ECONNREFUSED|postgres/i, 'no internals in the problem document')

  await relay.up()
  const directConfig = testConfig(database.url, redisUrl)
  const direct = openApiDeps(directConfig, testLogger(config, 'tasklane-test'))
  t.teardown(async () => {
    await direct.close()
    // Its queues are under a prefix of their own, and write their meta keys there.
    await deletePrefixKeys(redisUrl, directConfig.TASKLANE_QUEUE_PREFIX)
  })
  const [before] = await direct.database.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(before!.n, 0, 'nothing was stored')
  // postgres.js reconnects on the next query: the API recovers by itself.
  let after = 0
  for (let i = 0; i < 50 && after !== 202; i++) {
    after = (await app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { n: 2 } } })).statusCode
    if (after !== 202) await sleep(100)
  }
  t.equal(after, 202, 'accepted once Postgres answers again')
})

t.test('POST /v1/tasks when Redis has been unreachable since the API started: 202 at once, stored queued', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const config = testConfig(database.url, `redis://127.0.0.1:${await freePort()}`)
  const deps = openApiDeps(config, testLogger(config, 'tasklane-api'))
  const app = await buildServer(deps, testLogger(config, 'tasklane-api'))
  t.teardown(async () => {
    await Promise.race([app.close(), sleep(2_000)])
    // BullMQ waits for a connection that never came; do not let it hold the test.
    await Promise.race([deps.close(), sleep(2_000)])
    deps.redis.disconnect()
  })

  const started = Date.now()
  const res = await app.inject({ method: 'POST', url: '/v1/tasks', payload: { type: 'echo', payload: { n: 1 } } })
  t.equal(res.statusCode, 202, 'accepted although Redis never answered')
  t.comment(`answered in ${Date.now() - started} ms`)
  const [row] = await deps.database.sql<{ status: string }[]>`select status from tasks where id = ${res.json().id}`
  t.equal(row?.status, 'queued', 'the reconciler of a worker enqueues it once Redis answers')
})
