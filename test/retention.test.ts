import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { v7 } from 'uuid'
import { createDbClient } from '../services/core/db/db-client.ts'
import { createTenantLimitsRepository } from '../services/core/tenants/tenant-limits-repository.ts'
import { createPurger, PURGER_LOCK_KEY } from '../services/worker/purger.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { testConfig, testLogger } from './helpers/test-config.ts'

const DAY = 86_400_000

function purgerOf (t: Test, h: Harness, env: Record<string, string> = {}) {
  const lock = createDbClient(h.config.DATABASE_URL, { max: 1, applicationName: 'tasklane-test:purger-lock' })
  t.teardown(() => lock.close())
  const config = testConfig(h.config.DATABASE_URL, h.config.REDIS_URL, env)
  const registry = new Registry()
  const purger = createPurger({ sql: h.sql, db: h.deps.database.db, lockSql: lock.sql, config, registry, log: testLogger(config, 'purger') })
  return { purger, registry }
}

/** A task row as the API would have stored it `ageMs` ago, finished `finishedAgoMs` ago (null: unfinished), with one attempt. */
async function seed (h: Harness, tenant: string, status: string, ageMs: number, finishedAgoMs: number | null): Promise<string> {
  const created = Date.now() - ageMs
  const id = v7({ msecs: created })
  const at = new Date(created).toISOString()
  const finishedAt = finishedAgoMs === null ? null : new Date(Date.now() - finishedAgoMs).toISOString()
  await h.sql`
    insert into tasks (id, tenant, type, queue, status, priority, payload, max_attempts, backoff, timeout_ms, run_at, created_at, updated_at, finished_at, attempts)
    values (${id}, ${tenant}, 'echo', 'default', ${status}, 'normal', '{}'::jsonb, 3, '{"type":"fixed","delayMs":0}'::jsonb, 1000,
            ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz, ${finishedAt}::timestamptz, 1)`
  await h.sql`insert into task_attempts (task_id, attempt, worker_id, started_at, outcome)
    values (${id}, 1, 'w', ${at}::timestamptz, ${status === 'queued' ? 'released' : status})`
  return id
}

const present = async (h: Harness, ids: string[]) =>
  new Set((await h.sql<{ id: string }[]>`select id from tasks where id = any(${ids}::uuid[])`).map((r) => r.id))
const attemptsOf = async (h: Harness, ids: string[]) =>
  (await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = any(${ids}::uuid[])`)[0]!.n

t.test('retention set to seconds: finished tasks and their attempts disappear, queued and running ones stay', async (t) => {
  const env = {
    TASKLANE_RETENTION_COMPLETED: '1s', TASKLANE_RETENTION_FAILED: '1s', TASKLANE_RETENTION_CANCELLED: '1s',
    TASKLANE_PURGE_INTERVAL_MS: '200', TASKLANE_MAX_RESULT_BYTES: '64', TASKLANE_RECONCILER_INTERVAL_MS: '0',
  }
  const h = await startHarness(t, { env })
  const worker = await h.startWorker()
  const completed = await h.createTask({ type: 'echo', payload: { ok: 1 } })
  // The echo of a payload over the result cap fails for good.
  const failed = await h.createTask({ type: 'echo', payload: { big: 'x'.repeat(200) } })
  const cancelled = await h.createTask({ type: 'echo', payload: {}, delayMs: 3_600_000 })
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${cancelled.id}/cancel` })).json().status, 'cancelled')
  const queued = await h.createTask({ type: 'echo', payload: {}, delayMs: 3_600_000 })
  const running = await h.createTask({ type: 'sleep', payload: { ms: 60_000 } })
  await waitFor(async () => (await h.getTask(running.id)).status === 'running')
  const finished = [completed.id, failed.id, cancelled.id]

  await waitFor(async () => (await present(h, finished)).size === 0, 20_000)
  t.equal(await attemptsOf(h, finished), 0, 'their attempts went with them')
  // Several more passes: the unfinished ones are never purged.
  const passes = async () => (await worker.registry.getSingleMetric('tasklane_purger_passes_total')!.get()).values
    .find((v) => v.labels.result === 'done')!.value
  const before = await passes()
  await waitFor(async () => (await passes()) >= before + 3, 10_000)
  t.same([...(await present(h, [queued.id, running.id]))].sort(), [queued.id, running.id].sort(), 'queued and running tasks stay')
  t.equal(await attemptsOf(h, [running.id]), 1, 'the running attempt stays')

  const purged = (await worker.registry.getSingleMetric('tasklane_tasks_purged_total')!.get()).values
  for (const status of ['completed', 'failed', 'cancelled']) {
    t.equal(purged.find((v) => v.labels.status === status)?.value, 1, `tasklane_tasks_purged_total{status="${status}"}`)
  }
  const stats = (await h.app.inject({ url: '/v1/stats' })).json()
  t.same(stats.tasks.byStatus, { queued: 1, running: 1, completed: 0, failed: 0, cancelled: 0 }, 'the stats counters follow the deletes')
})

t.test('never before: per status defaults and per-tenant retentionDays, in bounded batches over several passes', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_PURGE_INTERVAL_MS: '0' } })
  const limits = createTenantLimitsRepository(h.deps.database.db)
  await limits.put('short', { retentionDays: 1 })
  await limits.put('long', { retentionDays: 60 })
  await limits.put('plain', { retentionDays: null })
  t.equal((await limits.get('short'))?.retentionDays, 1)
  t.equal((await limits.get('plain'))?.retentionDays, null, 'null: the deployment default')
  t.same([...(await limits.retentionOverrides())].sort(), [['long', 60], ['short', 1]])

  const gone: string[] = []
  const kept: string[] = []
  // Deployment defaults: 7d completed and cancelled, 30d failed.
  for (const tenant of ['default', 'plain']) {
    gone.push(await seed(h, tenant, 'completed', 9 * DAY, 8 * DAY))
    kept.push(await seed(h, tenant, 'completed', 9 * DAY, 6 * DAY), await seed(h, tenant, 'completed', DAY, DAY))
    gone.push(await seed(h, tenant, 'failed', 32 * DAY, 31 * DAY))
    kept.push(await seed(h, tenant, 'failed', 32 * DAY, 29 * DAY))
    gone.push(await seed(h, tenant, 'cancelled', 8 * DAY, 7 * DAY + 60_000))
    kept.push(await seed(h, tenant, 'cancelled', 8 * DAY, 7 * DAY - 60_000))
    kept.push(await seed(h, tenant, 'queued', 100 * DAY, null), await seed(h, tenant, 'running', 100 * DAY, null))
  }
  // A shorter retention than the default, and a longer one.
  gone.push(await seed(h, 'short', 'completed', 3 * DAY, 2 * DAY), await seed(h, 'short', 'failed', 3 * DAY, 2 * DAY))
  kept.push(await seed(h, 'short', 'completed', DAY, DAY / 2), await seed(h, 'short', 'queued', 10 * DAY, null))
  kept.push(await seed(h, 'long', 'completed', 9 * DAY, 8 * DAY), await seed(h, 'long', 'failed', 32 * DAY, 31 * DAY))
  gone.push(await seed(h, 'long', 'cancelled', 62 * DAY, 61 * DAY))
  for (let i = 0; i < 5; i++) gone.push(await seed(h, 'default', 'completed', 20 * DAY, 10 * DAY + i))

  // Two rows looked at per statement, five per pass: the purge takes several passes.
  const { purger, registry } = purgerOf(t, h, { TASKLANE_PURGE_BATCH_SIZE: '2', TASKLANE_PURGE_MAX_PER_PASS: '5' })
  const first = await purger.runOnce()
  t.equal(first?.caughtUp, false, 'a pass stops at its budget')
  t.ok(first!.scanned <= 5)
  let passes = 1
  for (;;) {
    const report = await purger.runOnce()
    passes++
    if (report?.caughtUp || passes > 50) break
  }
  t.ok(passes > 2, `took ${passes} passes`)
  const left = await present(h, [...gone, ...kept])
  t.same(gone.filter((id) => left.has(id)), [], 'every task past its retention is gone')
  t.same(kept.filter((id) => !left.has(id)), [], 'no task is purged before its retention ran out')
  t.equal(await attemptsOf(h, gone), 0)
  t.equal(await attemptsOf(h, kept), kept.length, 'the kept tasks keep their attempts')
  const purged = (await registry.getSingleMetric('tasklane_tasks_purged_total')!.get()).values
  t.equal(purged.reduce((sum, v) => sum + v.value, 0), gone.length)

  // The counters the purger reads its tenants from match the rows.
  const counts = await h.sql`select tenant, type, status, sum(count)::int as n from task_counts group by 1, 2, 3 having sum(count) <> 0 order by 1, 2, 3`
  const actual = await h.sql`select tenant, type, status, count(*)::int as n from tasks group by 1, 2, 3 order by 1, 2, 3`
  t.same(counts, actual, 'task_counts equals a count of the rows')
})

t.test('one purger pass at a time across replicas', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_PURGE_INTERVAL_MS: '0' } })
  const { purger } = purgerOf(t, h)
  await h.sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${PURGER_LOCK_KEY.toString()}::bigint)`
    t.equal(await purger.runOnce(), undefined, 'skipped while another replica holds the lock')
  })
  t.ok(await purger.runOnce(), 'runs once the lock is free')
})

t.test('every table that references tasks deletes with it (ON DELETE CASCADE) and indexes its foreign key', async (t) => {
  const h = await startHarness(t)
  const fks = await h.sql<{ child: string, deltype: string, indexed: boolean }[]>`
    select c.conrelid::regclass::text as child, c.confdeltype::text as deltype,
           exists (select 1 from pg_index i where i.indrelid = c.conrelid and i.indkey[0] = c.conkey[1]) as indexed
    from pg_constraint c where c.contype = 'f' and c.confrelid = 'tasks'::regclass`
  t.ok(fks.length >= 1, 'task_attempts at least')
  for (const fk of fks) {
    t.equal(fk.deltype, 'c', `${fk.child}: ON DELETE CASCADE, so the purger's delete covers it`)
    t.ok(fk.indexed, `${fk.child}: an index led by the foreign key column`)
  }
})
