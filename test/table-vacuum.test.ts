import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { v7 } from 'uuid'
import { createTableVacuum } from '../services/worker/table-vacuum.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { testConfig, testLogger } from './helpers/test-config.ts'

function vacuumOf (h: Harness, env: Record<string, string> = {}) {
  const config = testConfig(h.config.DATABASE_URL, h.config.REDIS_URL, env)
  const registry = new Registry()
  return createTableVacuum({ sql: h.sql, config, registry, log: testLogger(config, 'vacuum') })
}

/** The statistics of tasks as a vacuum pass would read them (they reach pg_stat_user_tables asynchronously). */
async function tasksStats (h: Harness): Promise<{ dead: number, vacuums: number, changed: number }> {
  await h.sql`select pg_stat_clear_snapshot()`
  const [row] = await h.sql<{ dead: number, vacuums: number, changed: number }[]>`
    select n_dead_tup::int as dead, vacuum_count::int as vacuums, n_mod_since_analyze::int as changed
    from pg_stat_user_tables where relid = 'tasks'::regclass`
  return row!
}

/** Inserts `n` finished tasks of tenant `churn` and deletes them: `n` dead tuples, as a client's DELETEs leave. */
async function churn (h: Harness, n: number): Promise<void> {
  const at = new Date().toISOString()
  const ids = Array.from({ length: n }, () => v7())
  await h.sql`
    insert into tasks (id, tenant, type, queue, status, priority, payload, max_attempts, backoff, timeout_ms, run_at, created_at, updated_at, finished_at, attempts)
    select id, 'churn', 'echo', 'default', 'completed', 'normal', '{}'::jsonb, 3, '{"type":"fixed","delayMs":0}'::jsonb, 1000,
           ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz, ${at}::timestamptz, 1
    from unnest(${ids}::uuid[]) as id`
  await h.sql`delete from tasks where tenant = 'churn'`
}

const deadAtLeast = (h: Harness, n: number) => waitFor(async () => (await tasksStats(h)).dead >= n, 30_000, 200)

t.test('a pass vacuums a table autovacuum leaves alone once its dead tuples pass autovacuum\'s threshold, not before; off never does', async (t: Test) => {
  const h = await startHarness(t, { env: { TASKLANE_PURGE_INTERVAL_MS: '0' } })
  // autovacuum_enabled = false: autovacuum skips the table whatever the server's setting, so
  // `auto` owns it; a threshold of 100 dead tuples whatever the row count.
  await h.sql`alter table tasks set (autovacuum_enabled = false, autovacuum_vacuum_threshold = 100, autovacuum_vacuum_scale_factor = 0)`

  await churn(h, 30)
  // The insert and the delete may run on two connections, whose backends report their counts
  // to the statistics each in its own time: wait for both.
  await waitFor(async () => { const s = await tasksStats(h); return s.dead >= 30 && s.changed >= 60 }, 30_000, 200)
  const below = await vacuumOf(h).runOnce()
  t.notOk(below!.vacuumed.includes('tasks'), '30 dead tuples, under the threshold: not vacuumed')
  t.ok(below!.analyzed.includes('tasks'), 'but analyzed: 60 rows changed, past autovacuum_analyze_threshold (50)')
  t.ok((await tasksStats(h)).dead >= 30)

  await churn(h, 200)
  await deadAtLeast(h, 230)
  const off = await vacuumOf(h, { TASKLANE_PURGE_VACUUM: 'off' }).runOnce()
  t.same(off, { vacuumed: [], analyzed: [] }, 'TASKLANE_PURGE_VACUUM=off: nothing')

  const vacuumsBefore = (await tasksStats(h)).vacuums
  const past = await vacuumOf(h).runOnce()
  t.ok(past!.vacuumed.includes('tasks'), '230 dead tuples, past the threshold: vacuumed')
  t.ok(past!.analyzed.includes('tasks'), 'and analyzed: 400 rows changed since the last analyze')
  const after = await waitFor(async () => { const s = await tasksStats(h); return s.vacuums > vacuumsBefore && s }, 30_000, 200)
  // A tuple a concurrent transaction's snapshot still sees stays for the next vacuum; here none should.
  t.ok(after.dead < 30, `${after.dead} dead tuples left in tasks of 230`)
})

// The churn of tasks comes from their updates and from clients' DELETE /v1/tasks/{id}, not only
// from the purge: with nothing past retention, the workers vacuum it all the same.
t.test('with autovacuum off, a worker vacuums what deleted and updated tasks leave, with no purge pass', async (t: Test) => {
  const h = await startHarness(t, { env: { TASKLANE_PURGE_INTERVAL_MS: '3600000', TASKLANE_VACUUM_CHECK_INTERVAL_MS: '200' } })
  // A threshold of no dead tuple: whatever a vacuum could not remove yet (a snapshot of a
  // concurrent transaction still saw it) is vacuumed by a later pass.
  await h.sql`alter table tasks set (autovacuum_enabled = false, autovacuum_vacuum_threshold = 0, autovacuum_vacuum_scale_factor = 0)`
  const worker = await h.startWorker()
  const ids: string[] = []
  for (let i = 0; i < 40; i++) ids.push((await h.createTask({ type: 'echo', payload: { i } })).id)
  await waitFor(async () => {
    const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status = 'completed'`
    return row!.n === ids.length
  }, 30_000)
  const deletes = []
  for (const id of ids) deletes.push((await h.app.inject({ method: 'DELETE', url: `/v1/tasks/${id}` })).statusCode)
  t.same(new Set(deletes), new Set([204]), 'every task deleted through the API')

  // 80 updates (claim, finish) and 40 deletes: 120 dead tuples, whatever was vacuumed before the deletes.
  const vacuumed = await waitFor(async () => {
    const runs = (await worker.registry.getSingleMetric('tasklane_table_maintenance_total')!.get()).values
    const stats = await tasksStats(h)
    return runs.some((v) => v.labels.table === 'tasks' && v.labels.operation === 'vacuum' && v.value > 0) && stats.dead === 0 && stats
  }, 60_000, 200)
  t.ok(vacuumed.vacuums >= 1, `tasks vacuumed ${vacuumed.vacuums} times, no dead tuple left`)
})
