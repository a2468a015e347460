import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { deletePrefixKeys } from './helpers/services.ts'

const ADMIN_KEY = 'admin-key-for-the-fairness-test-01'
const KEY_A = 'tenant-a-key-for-fairness-0001'
const KEY_B = 'tenant-b-key-for-fairness-0002'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_ADMIN_KEY: ADMIN_KEY, TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const ADMIN = bearer(ADMIN_KEY)
// Passes often, so the tests do not wait on the interval.
const FAST = { TASKLANE_ADMISSION_INTERVAL_MS: '100', TASKLANE_TENANT_LIMITS_CACHE_MS: '500' }

async function putLimits (h: Harness, tenant: string, body: Record<string, unknown>) {
  const res = await h.app.inject({ method: 'PUT', url: `/v1/admin/tenants/${tenant}/limits`, headers: ADMIN, payload: body })
  if (res.statusCode !== 200) throw new Error(`PUT limits ${res.statusCode}: ${res.body}`)
  return res.json()
}

async function createBatch (h: Harness, key: string, tasks: Record<string, unknown>[]): Promise<string[]> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers: bearer(key), payload: { tasks } })
  if (res.statusCode !== 202) throw new Error(`batch ${res.statusCode}: ${res.body}`)
  return (res.json() as { items: { id: string }[] }).items.map((task) => task.id)
}

const running = async (h: Harness, tenant: string): Promise<number> =>
  (await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where tenant = ${tenant} and status = 'running'`)[0]!.n

t.test('the limits route: admin key only, defaults in force, replace, bad input changes nothing', async (t) => {
  const h = await startHarness(t, { env: { ...ENV, TASKLANE_TENANT_CONCURRENCY: 'http:5', TASKLANE_RATE_LIMIT_MAX: '600' } })
  const url = '/v1/admin/tenants/acme/limits'
  for (const headers of [{}, bearer(KEY_A), bearer('tl_not-the-admin-key-at-all-0000')]) {
    const get = await h.app.inject({ url, headers })
    t.equal(get.statusCode, 401, 'GET without the admin key')
    t.match(get.headers['www-authenticate'], /^Bearer realm="tasklane admin"/)
    const put = await h.app.inject({ method: 'PUT', url, headers, payload: { createPerMinute: 1 } })
    t.equal(put.statusCode, 401, 'PUT without the admin key')
  }
  const defaults = (await h.app.inject({ url, headers: ADMIN })).json()
  t.same(defaults, {
    tenant: 'acme', concurrency: { default: null, http: 5 }, createPerMinute: 600, retentionDays: null,
    dispatchWindow: 200, dispatchWindowAlone: 10_000, usage: { default: 0, http: 0 },
  }, 'a tenant with none set sees the defaults')

  const bad = [
    { concurrency: { nosuchqueue: 2 } }, { concurrency: { default: -1 } }, { createPerMinute: 0 }, { retentionDays: 'x' }, { other: 1 },
  ]
  for (const payload of bad) {
    const res = await h.app.inject({ method: 'PUT', url, headers: ADMIN, payload })
    t.equal(res.statusCode, 400, `${JSON.stringify(payload)} is refused`)
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.same((await h.app.inject({ url, headers: ADMIN })).json(), defaults, 'refused input changed nothing')

  const replaced = await putLimits(h, 'acme', { concurrency: { default: 3 }, createPerMinute: 2, retentionDays: 9 })
  t.same(replaced.concurrency, { default: 3, http: 5 })
  t.equal(replaced.createPerMinute, 2)
  t.equal(replaced.retentionDays, 9)
  const [stored] = await h.sql`select concurrency, create_per_minute, retention_days from tenant_limits where tenant = 'acme'`
  t.same(stored, { concurrency: { default: 3 }, create_per_minute: 2, retention_days: 9 })

  // createPerMinute replaces the deployment's limit for this tenant only.
  const codes: number[] = []
  for (let i = 0; i < 3; i++) {
    codes.push((await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: bearer(KEY_A), payload: { type: 'echo' } })).statusCode)
  }
  t.same(codes, [202, 202, 429], 'acme may create 2 a minute')
  t.equal((await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: bearer(KEY_B), payload: { type: 'echo' } })).statusCode, 202,
    'globex keeps the default')

  const cleared = await putLimits(h, 'acme', {})
  t.same(cleared.concurrency, { default: null, http: 5 }, 'a PUT without a field puts the default back')
  t.equal(cleared.createPerMinute, 600)
})

t.test('a tenant limited to 2 never runs more than 2 in the queue across two worker processes', async (t) => {
  const h = await startHarness(t, { env: { ...ENV, ...FAST } })
  await putLimits(h, 'acme', { concurrency: { default: 2 } })
  const ids = await createBatch(h, KEY_A, Array.from({ length: 12 }, () => ({ type: 'sleep', payload: { ms: 150 } })))
  const workerEnv = { ...FAST, TASKLANE_QUEUES: 'default:10,http:1' }
  await Promise.all([h.spawnWorker(workerEnv), h.spawnWorker(workerEnv)])
  let most = 0
  let samples = 0
  for (;;) {
    most = Math.max(most, await running(h, 'acme'))
    samples++
    const [left] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status <> 'completed'`
    if (left!.n === 0) break
    await sleep(10)
  }
  t.comment(`${samples} samples of the running count; the most seen at once: ${most}`)
  t.ok(most <= 2, `never more than 2 running (saw ${most})`)
  t.equal(most, 2, 'and the limit is used')
  const workers = await h.sql<{ n: number }[]>`select count(distinct worker_id)::int as n from tasks where id = any(${ids}::uuid[])`
  t.equal(workers[0]!.n, 2, 'both workers ran some')
  const attempts = await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = any(${ids}::uuid[])`
  t.equal(attempts[0]!.n, 12, 'each task ran once')
})

// Alone in the queue, the flood goes to BullMQ (up to the window for a tenant alone) and the
// newcomer's tasks overtake it by their dispatch slots; with that window as small as the shared
// one, the flood waits in Postgres and the admission loop feeds it in.
for (const mode of [
  { name: 'dispatched to BullMQ', env: {} as Record<string, string>, held: 0 },
  { name: 'held in Postgres', env: { TASKLANE_DISPATCH_WINDOW_ALONE: '200' }, held: 4_800 },
]) {
  t.test(`a flood of 5,000 from one tenant (${mode.name}) does not hold back another tenant's 20`, async (t) => {
    const h = await startHarness(t, { env: { ...ENV, ...FAST, ...mode.env, TASKLANE_RATE_LIMIT_MAX: '0' } })
    for (let i = 0; i < 5; i++) await createBatch(h, KEY_A, Array.from({ length: 1000 }, (_, n) => ({ type: 'echo', payload: { n } })))
    const [before] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where held`
    t.equal(before!.n, mode.held, mode.held === 0 ? 'alone in the queue, the flood was dispatched' : 'past its window of 200, the flood waits in Postgres')
    const bIds = await createBatch(h, KEY_B, Array.from({ length: 20 }, (_, n) => ({ type: 'echo', payload: { n } })))
    await createBatch(h, KEY_A, Array.from({ length: 10 }, (_, n) => ({ type: 'echo', payload: { n } })))
    const [after] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where held`
    t.equal(after!.n, mode.held + 10, 'with another tenant\'s work in the queue, the flood\'s next tasks wait past the window of 200')
    await h.startWorker(FAST)
    await h.waitForTerminal(bIds, 60_000)
    const [a] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where tenant = 'acme' and status = 'queued'`
    const pickups = (await h.sql<{ ms: number }[]>`
      select extract(epoch from started_at - created_at) * 1000 as ms from tasks where id = any(${bIds}::uuid[]) order by 1`).map((r) => Number(r.ms))
    t.comment(`when globex's 20 tasks were done, acme still had ${a!.n} of 5,000 queued; globex pickup p50 ${pickups[9]!.toFixed(0)} ms, p99 ${pickups.at(-1)!.toFixed(0)} ms (since creation, the worker started after)`)
    const statuses = await h.sql<{ status: string }[]>`select status from tasks where id = any(${bIds}::uuid[])`
    t.ok(statuses.every((r) => r.status === 'completed'), 'globex\'s tasks are done')
    t.ok(a!.n > 2_500, 'while most of acme\'s are still queued')
    await waitFor(async () => (await h.sql`select 1 from tasks where tenant = 'acme' and status <> 'completed' limit 1`).length === 0, 120_000, 200)
    t.pass('and the flood drains')
  })
}

t.test('lowering a limit below what runs keeps the running tasks and admits none until under; raising admits', async (t) => {
  const h = await startHarness(t, { env: { ...ENV, ...FAST } })
  await putLimits(h, 'acme', { concurrency: { default: 3 } })
  await h.startWorker({ ...FAST, TASKLANE_QUEUES: 'default:10,http:1' })
  const ids = await createBatch(h, KEY_A, Array.from({ length: 9 }, () => ({ type: 'sleep', payload: { ms: 700 } })))
  await waitFor(async () => (await running(h, 'acme')) === 3)
  const first = (await h.sql<{ id: string }[]>`select id from tasks where tenant = 'acme' and status = 'running'`).map((r) => r.id)
  await putLimits(h, 'acme', { concurrency: { default: 1 } })
  const started = async () => (await h.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and started_at is not null`)[0]!.n
  await waitFor(async () => (await started()) > 3, 20_000, 10)
  const firstNow = await h.sql<{ status: string, attempts: number }[]>`select status, attempts from tasks where id = any(${first}::uuid[])`
  t.same(firstNow.map((r) => [r.status, r.attempts]), [['completed', 1], ['completed', 1], ['completed', 1]],
    'the three running when the limit dropped kept running and finished before a fourth started')
  let most = 0
  for (let i = 0; i < 40; i++) { most = Math.max(most, await running(h, 'acme')); await sleep(20) }
  t.ok(most <= 1, `then one at a time (saw ${most})`)
  await putLimits(h, 'acme', { concurrency: { default: 5 } })
  await waitFor(async () => (await running(h, 'acme')) >= 2, 5_000, 20)
  t.pass('raising the limit admits more within seconds')
  await waitFor(async () => (await h.sql`select 1 from tasks where id = any(${ids}::uuid[]) and status <> 'completed'`).length === 0, 30_000)
})

t.test('every Redis key of the prefix deleted while tasks are held: nothing is lost', async (t) => {
  const env = { ...ENV, ...FAST, TASKLANE_RECONCILER_INTERVAL_MS: '300', TASKLANE_RECONCILER_MIN_AGE_MS: '300' }
  const h = await startHarness(t, { env })
  await putLimits(h, 'acme', { concurrency: { default: 2 } })
  const ids = await createBatch(h, KEY_A, Array.from({ length: 30 }, (_, n) => ({ type: 'echo', payload: { n } })))
  t.equal((await h.sql`select 1 from tasks where held`).length, 28, 'all but 2 are held')
  const deleted = await deletePrefixKeys(h.config.REDIS_URL, h.config.TASKLANE_QUEUE_PREFIX)
  t.ok(deleted > 0, `${deleted} keys deleted`)
  await h.startWorker({ ...env })
  await h.waitForTerminal(ids, 60_000)
  const notDone = await h.sql`select id, status from tasks where id = any(${ids}::uuid[]) and status <> 'completed'`
  t.same(notDone, [], 'every task completed')
  const [attempts] = await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = any(${ids}::uuid[])`
  t.equal(attempts!.n, 30, 'each ran exactly once')
})
