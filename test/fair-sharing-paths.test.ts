import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'

// Fair sharing holds for every executor kind and every way a task is made: pull leases free
// their slots when they end (complete, fail, cancel), and tasks made outside the create route
// (released dependents, retries, schedules) take a slot or wait held like created ones.

const ADMIN_KEY = 'admin-key-for-the-fairness-paths-01'
const KEY = 'tenant-a-key-for-fairness-paths-01'
const A = bearer(KEY)
const ENV = {
  TASKLANE_AUTH: 'required', TASKLANE_ADMIN_KEY: ADMIN_KEY, TASKLANE_API_KEYS: `acme:${KEY}`,
  TASKLANE_ADMISSION_INTERVAL_MS: '100', TASKLANE_TENANT_LIMITS_CACHE_MS: '200',
}

type Lease = { leaseId: string, task: { id: string } }

async function setup (t: { teardown: (fn: () => unknown) => void }) {
  const h = await startHarness(t, { env: ENV })
  const inject = async (method: 'GET' | 'POST' | 'PUT', url: string, payload?: object, headers = A) =>
    h.app.inject({ method, url, headers, ...(payload ? { payload } : {}) })
  const put = await inject('PUT', '/v1/task-types/job', { executor: { kind: 'pull' } })
  if (put.statusCode >= 300) throw new Error(`type ${put.statusCode} ${put.body}`)
  const create = async (body: object): Promise<string> => {
    const res = await inject('POST', '/v1/tasks', body)
    if (res.statusCode !== 202) throw new Error(`create ${res.statusCode} ${res.body}`)
    return res.json().id
  }
  const lease = async (): Promise<Lease | undefined> =>
    (await inject('POST', '/v1/leases', { types: ['job'], max: 1, workerId: 'w-1', visibilityMs: 30_000 })).json().items[0]
  const state = async (id: string) =>
    (await h.sql<{ status: string, held: boolean, queue: string }[]>`select status, held, queue from tasks where id = ${id}`)[0]!
  return { h, inject, create, lease, state }
}

/** The tenant's dispatched count in the queue as Redis has it. */
async function dispatched (h: Harness, queue: string): Promise<number> {
  return Number(await h.deps.redis.hget(`${h.config.TASKLANE_QUEUE_PREFIX}:fair:${queue}`, 'acme') ?? 0)
}

t.test('pull leases free their slot when they end; released dependents and retries take one or wait held', async (t) => {
  const { h, inject, create, lease, state } = await setup(t)
  const first = await create({ type: 'job' })
  const { queue } = await state(first)
  // The registered type's queue reaches the API's registry by notification.
  await waitFor(async () => (await inject('PUT', '/v1/admin/tenants/acme/limits', { concurrency: { [queue]: 1 } }, bearer(ADMIN_KEY))).statusCode === 200)
  await h.startWorker(ENV)
  const second = await create({ type: 'job' })
  t.match(await state(second), { status: 'queued', held: true }, 'past the limit of 1 the task is held')
  t.equal(await dispatched(h, queue), 1)

  const l1 = (await lease())!
  t.equal(l1.task.id, first)
  t.equal(await lease(), undefined, 'the held task has no job')
  t.equal((await inject('POST', `/v1/leases/${l1.leaseId}/complete`, { result: {} })).statusCode, 200)
  const l2 = await waitFor(lease, 10_000)
  t.equal(l2.task.id, second, 'a lease completing freed the slot and the admission loop dispatched the held task')
  t.equal((await inject('POST', `/v1/leases/${l2.leaseId}/fail`, { error: { message: 'no' }, retryable: false })).statusCode, 200)
  await waitFor(async () => (await dispatched(h, queue)) === 0, 5_000)
  t.pass('a failed lease freed its slot')

  // A dependent made ready by its dependency's end takes the slot the dependency gave back.
  const batch = await inject('POST', '/v1/tasks/batch', { tasks: [{ type: 'job' }, { type: 'job', dependsOn: ['#0'] }] })
  t.equal(batch.statusCode, 202, batch.body)
  const [parent, child] = (batch.json().items as { id: string }[]).map((i) => i.id)
  t.match(await state(child!), { held: false }, 'a waiting dependent holds no slot')
  t.equal(await dispatched(h, queue), 1, 'only the parent is dispatched')
  const l3 = (await lease())!
  t.equal(l3.task.id, parent)
  t.equal((await inject('POST', `/v1/leases/${l3.leaseId}/complete`, { result: {} })).statusCode, 200)
  t.match(await state(child!), { status: 'queued', held: false }, 'the released dependent took the slot at once, not held')
  t.equal(await dispatched(h, queue), 1)
  const l4 = await waitFor(lease, 5_000)
  t.equal(l4.task.id, child)

  // A client's cancel of a leased task ends it and frees the slot; a retry takes one again.
  t.equal((await inject('POST', `/v1/tasks/${child}/cancel`)).statusCode, 202)
  await waitFor(async () => (await dispatched(h, queue)) === 0, 5_000)
  t.pass('the cancel freed the slot')
  const blocker = await create({ type: 'job' })
  t.match(await state(blocker), { held: false })
  t.equal((await inject('POST', `/v1/tasks/${child}/retry`)).statusCode, 202)
  t.match(await state(child!), { status: 'queued', held: true }, 'a retry past the limit waits held')
  t.equal(await dispatched(h, queue), 1, 'and took no slot')
  t.equal((await inject('POST', `/v1/tasks/${blocker}/cancel`)).statusCode, 202)
  const l5 = await waitFor(lease, 10_000)
  t.equal(l5.task.id, child, 'the queued cancel freed the slot and the retried task was admitted')
})

t.test('tasks a schedule creates pass admission: past the tenant\'s limit they wait held', async (t) => {
  const { h, inject, create, state } = await setup(t)
  const probe = await create({ type: 'job' })
  const { queue } = await state(probe)
  await waitFor(async () => (await inject('PUT', '/v1/admin/tenants/acme/limits', { concurrency: { [queue]: 1 } }, bearer(ADMIN_KEY))).statusCode === 200)
  // The worker's schedule loop fires it.
  await h.startWorker(ENV)
  const res = await inject('POST', '/v1/schedules', { name: 'every-second', cron: '* * * * * *', overlap: 'allow', task: { type: 'job' } })
  t.equal(res.statusCode, 201, res.body)
  // A schedule's task is held just after its commit: wait for three, then look at the first two.
  const rows = await waitFor(async () => {
    const rows = await h.sql<{ held: boolean }[]>`select held from tasks where schedule_id is not null order by scheduled_for`
    return rows.length >= 3 && rows
  }, 15_000)
  t.same(rows.slice(0, 2).map((r) => r.held), [true, true], 'the scheduled tasks are held behind the probe\'s slot')
  t.equal(await dispatched(h, queue), 1, 'no scheduled task took a slot past the limit')
})

t.test('webhook executors keep to the tenant\'s concurrency across two worker processes', async (t) => {
  const env = { ...ENV, TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' }
  const h = await startHarness(t, { env })
  let inFlight = 0
  let most = 0
  const secrets: string[] = []
  const rx = await startReceiver(t, () => secrets, (_r, res) => {
    inFlight++
    most = Math.max(most, inFlight)
    setTimeout(() => { inFlight--; res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}') }, 150)
  })
  const put = await h.app.inject({ method: 'PUT', url: '/v1/task-types/hook', headers: A, payload: { executor: { kind: 'webhook', url: rx.url } } })
  t.equal(put.statusCode, 201, put.body)
  secrets.push(put.json().signingSecret)
  const create = async (i: number): Promise<string> => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'hook', payload: { i } } })
    t.equal(res.statusCode, 202)
    return res.json().id
  }
  const ids = [await create(0)]
  const queue = (await h.sql<{ queue: string }[]>`select queue from tasks where id = ${ids[0]!}`)[0]!.queue
  // The registered type's queue reaches the API's registry by notification.
  await waitFor(async () => (await h.app.inject({ method: 'PUT', url: '/v1/admin/tenants/acme/limits', headers: bearer(ADMIN_KEY), payload: { concurrency: { [queue]: 2 } } })).statusCode === 200, 10_000)
  for (let i = 1; i < 12; i++) ids.push(await create(i))
  await h.spawnWorker(env)
  await h.spawnWorker(env)
  await waitFor(async () => (await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where id in ${h.sql(ids)} and status = 'completed'`)[0]!.n === ids.length, 60_000)
  t.equal(rx.accepted.size, ids.length, 'every task was delivered and answered once')
  t.ok(most <= 2, `at most 2 requests at the receiver at once (saw ${most})`)
  t.ok(most >= 1)
})

t.test('with no worker process at all, the API\'s admission loop dispatches held tasks to pull workers', async (t) => {
  const { h, inject, create, lease, state } = await setup(t)
  await h.deps.admission.start()
  const first = await create({ type: 'job' })
  const { queue } = await state(first)
  await waitFor(async () => (await inject('PUT', '/v1/admin/tenants/acme/limits', { concurrency: { [queue]: 1 } }, bearer(ADMIN_KEY))).statusCode === 200)
  const second = await create({ type: 'job' })
  t.match(await state(second), { held: true }, 'past the limit of 1 the task is held')
  const l1 = (await lease())!
  t.equal((await inject('POST', `/v1/leases/${l1.leaseId}/complete`, { result: {} })).statusCode, 200)
  const l2 = await waitFor(lease, 10_000)
  t.equal(l2.task.id, second, 'the held task was admitted by the API and leased')
})
