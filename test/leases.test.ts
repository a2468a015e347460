import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { bearer } from './helpers/auth.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'

const KEY_A = 'tenant-a-key-for-leases-00001'
const KEY_B = 'tenant-b-key-for-leases-00002'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const A = bearer(KEY_A)
const B = bearer(KEY_B)

type Lease = { leaseId: string, expiresAt: string, task: { id: string, type: string, payload: unknown, attempt: number, maxAttempts: number, deadline: string } }

async function setup (t: { teardown: (fn: () => unknown) => void }, env: Record<string, string> = {}) {
  const h = await startHarness(t, { env: { ...ENV, ...env } })
  const put = (headers: Record<string, string>, name: string, body: object) =>
    h.app.inject({ method: 'PUT', url: `/v1/task-types/${name}`, headers, payload: body })
  const create = async (headers: Record<string, string>, body: object) => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers, payload: body })
    if (res.statusCode !== 202) throw new Error(`create ${res.statusCode} ${res.body}`)
    return res.json() as { id: string }
  }
  const lease = async (headers: Record<string, string>, body: object) => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/leases', headers, payload: body })
    return { status: res.statusCode, body: res.json() as { items: Lease[], type?: string, errors?: { path: string }[] } }
  }
  const call = (headers: Record<string, string>, leaseId: string, action: string, body: object) =>
    h.app.inject({ method: 'POST', url: `/v1/leases/${leaseId}/${action}`, headers, payload: body })
  const get = async (id: string) => (await h.app.inject({ url: `/v1/tasks/${id}`, headers: A })).json() as { status: string, [k: string]: unknown }
  return { h, put, create, lease, call, get }
}

const attempts = async (h: Harness, id: string) =>
  h.sql<{ attempt: number, outcome: string, worker_id: string, error: { code: string } | null }[]>`
    select attempt, outcome, worker_id, error from task_attempts where task_id = ${id} order by attempt`

t.test('lease, heartbeat with progress, complete; a stale complete is 409 lease-lost', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'resize', { executor: { kind: 'pull' }, resultSchema: { type: 'object', required: ['url'] } })
  const task = await create(A, { type: 'resize', payload: { image: 'a.png' } })
  const got = await lease(A, { types: ['resize'], max: 10, workerId: 'w-1', visibilityMs: 5_000 })
  t.equal(got.status, 200, JSON.stringify(got.body))
  t.equal(got.body.items.length, 1)
  const item = got.body.items[0]!
  t.match(item.task, { id: task.id, type: 'resize', payload: { image: 'a.png' }, attempt: 1, maxAttempts: 3 })
  t.equal((await get(task.id)).status, 'running')
  t.same((await attempts(h, task.id)).map((a) => [a.outcome, a.worker_id]), [['running', 'w-1']])
  t.same((await lease(A, { types: ['resize'] })).body.items, [], 'a leased task is not handed out twice')

  const beat = await call(A, item.leaseId, 'heartbeat', { progress: 40, extendMs: 10_000 })
  t.equal(beat.statusCode, 200)
  t.equal(beat.json().cancelRequested, false)
  t.ok(new Date(beat.json().expiresAt) > new Date(item.expiresAt), 'extended')
  t.equal((await get(task.id)).progress, 40)

  t.equal((await call(B, item.leaseId, 'complete', { result: { url: 'x' } })).statusCode, 409, 'another tenant\'s lease is unknown')
  const done = await call(A, item.leaseId, 'complete', { result: { url: 'https://cdn/a.png' } })
  t.equal(done.statusCode, 200)
  t.match(done.json(), { status: 'completed', result: { url: 'https://cdn/a.png' } })
  const stale = await call(A, item.leaseId, 'complete', { result: { url: 'again' } })
  t.equal(stale.statusCode, 409)
  t.match(stale.json().type, /lease-lost$/)
  t.equal((await call(A, item.leaseId, 'heartbeat', {})).statusCode, 409)
  t.equal((await call(A, 'not-a-lease', 'fail', { error: { message: 'x' } })).statusCode, 409)
  t.same((await get(task.id)).result, { url: 'https://cdn/a.png' }, 'recorded once')

  // A result that breaks the result schema fails the task, not retried.
  const bad = await create(A, { type: 'resize', payload: {} })
  const l2 = (await lease(A, { types: ['resize'] })).body.items[0]!
  t.equal(l2.task.id, bad.id)
  const invalid = await call(A, l2.leaseId, 'complete', { result: { nope: true } })
  t.equal(invalid.statusCode, 200)
  t.match(invalid.json(), { status: 'failed', error: { code: 'RESULT_INVALID' } })
})

t.test('leases are only for the caller tenant\'s pull types', async (t) => {
  const { h, put, create, lease } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  await put(B, 'job', { executor: { kind: 'pull' } })
  await put(A, 'hook', { executor: { kind: 'webhook', url: 'https://example.com/x' } })
  const a = await create(A, { type: 'job', payload: { tenant: 'a' } })
  const b = await create(B, { type: 'job', payload: { tenant: 'b' } })
  const gotB = await lease(B, { types: ['job'], max: 10 })
  t.same(gotB.body.items.map((i) => i.task.id), [b.id], 'tenant B gets only its own task of the same-named type')
  const gotA = await lease(A, { types: ['job'], max: 10 })
  t.same(gotA.body.items.map((i) => i.task.id), [a.id])
  const notPull = await lease(A, { types: ['hook'] })
  t.equal(notPull.status, 400)
  t.equal(notPull.body.errors![0]!.path, '/types/0')
  t.equal((await lease(A, { types: ['echo'] })).status, 400, 'a built-in is not a pull type')
  t.equal((await lease(B, { types: ['hook'] })).status, 400, 'another tenant\'s type is unknown')
  const empty = await lease(A, { types: ['job'], waitMs: 300 })
  t.same(empty.body.items, [], 'nothing ready within waitMs')
  void h
})

t.test('long poll: a task created while a lease waits is handed out at once', async (t) => {
  const { put, create, lease } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const waiting = lease(A, { types: ['job'], waitMs: 10_000 })
  await sleep(300)
  const task = await create(A, { type: 'job' })
  const got = await waiting
  t.same(got.body.items.map((i) => i.task.id), [task.id])
})

t.test('fail: retried with backoff while attempts are left, then failed; retryable false fails at once', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' }, defaults: { maxAttempts: 2, backoff: { type: 'fixed', delayMs: 200 } } })
  const task = await create(A, { type: 'job' })
  const first = (await lease(A, { types: ['job'] })).body.items[0]!
  const failed = await call(A, first.leaseId, 'fail', { error: { message: 'boom', code: 'E_BOOM' } })
  t.match(failed.json(), { status: 'queued', error: { code: 'E_BOOM' } })
  const second = (await lease(A, { types: ['job'], waitMs: 5_000 })).body.items[0]!
  t.equal(second.task.attempt, 2, 'the retry comes back after its backoff')
  const last = await call(A, second.leaseId, 'fail', { error: { message: 'boom again' } })
  t.match(last.json(), { status: 'failed', error: { message: 'boom again', code: 'ERROR' } })
  t.same((await attempts(h, task.id)).map((a) => a.outcome), ['failed', 'failed'])

  const once = await create(A, { type: 'job' })
  const l = (await lease(A, { types: ['job'] })).body.items[0]!
  t.equal(l.task.id, once.id)
  const res = await call(A, l.leaseId, 'fail', { error: { message: 'bad input' }, retryable: false })
  t.match(res.json(), { status: 'failed', attempts: 1 })
})

t.test('a lease that expires ends its attempt lost (LEASE_EXPIRED); the task is leased again and completed once', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' }, defaults: { backoff: { type: 'fixed', delayMs: 100 } } })
  const task = await create(A, { type: 'job' })
  const first = (await lease(A, { types: ['job'], visibilityMs: 1_000, workerId: 'dies' })).body.items[0]!
  const second = (await lease(A, { types: ['job'], waitMs: 15_000, workerId: 'lives' })).body.items[0]
  t.ok(second, 'leased again after the first lease expired')
  t.equal(second!.task.attempt, 2)
  t.equal((await call(A, first.leaseId, 'complete', { result: { from: 'late' } })).statusCode, 409, 'the late worker is fenced off')
  t.equal((await call(A, second!.leaseId, 'complete', { result: { from: 'second' } })).statusCode, 200)
  const rows = await attempts(h, task.id)
  t.same(rows.map((a) => [a.outcome, a.worker_id, a.error?.code ?? null]), [['lost', 'dies', 'LEASE_EXPIRED'], ['completed', 'lives', null]])
  t.same((await get(task.id)).result, { from: 'second' })
})

t.test('past the deadline the attempt ends timed_out, following the retry policy', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' }, defaults: { maxAttempts: 1, timeoutMs: 1_500 } })
  const task = await create(A, { type: 'job' })
  const l = (await lease(A, { types: ['job'], visibilityMs: 60_000 })).body.items[0]!
  t.ok(new Date(l.expiresAt).getTime() <= new Date(l.task.deadline).getTime(), 'the lease never outlives the deadline')
  const beat = await call(A, l.leaseId, 'heartbeat', { extendMs: 60_000 })
  t.equal(beat.json().expiresAt, l.task.deadline, 'a heartbeat cannot extend past the deadline')
  const done = await waitFor(async () => { const x = await get(task.id); return x.status === 'failed' && x }, 10_000)
  t.match(done.error, { code: 'TIMEOUT' })
  t.same((await attempts(h, task.id)).map((a) => a.outcome), ['timed_out'])
})

t.test('cancel ends a leased task at once; the worker hears it by heartbeat, and its complete is 409', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const task = await create(A, { type: 'job' })
  const l = (await lease(A, { types: ['job'] })).body.items[0]!
  const cancel = await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel`, headers: A })
  t.equal(cancel.statusCode, 202)
  t.equal(cancel.json().status, 'cancelled', 'cancelled at once')
  const beat = await call(A, l.leaseId, 'heartbeat', {})
  t.equal(beat.statusCode, 200)
  t.equal(beat.json().cancelRequested, true)
  t.equal((await call(A, l.leaseId, 'complete', { result: 1 })).statusCode, 409)
  t.same((await attempts(h, task.id)).map((a) => a.outcome), ['cancelled'])
  // The job left BullMQ's active list, so it holds no concurrency slot.
  const counts = await h.deps.queues.get('acme/job').getJobCounts('active')
  t.equal(counts.active, 0)
})

t.test('the worker\'s reconciler repairs pull tasks too: a queued task whose job Redis lost is enqueued again', async (t) => {
  const { h, put, create, lease } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const task = await create(A, { type: 'job' })
  await h.deps.queues.get('acme/job').remove(task.id)
  await h.sql`update tasks set updated_at = now() - interval '1 hour' where id = ${task.id}`
  // A worker started after the type was registered learns its queue from the catalog.
  const worker = await h.startWorker({ TASKLANE_RECONCILER_INTERVAL_MS: '0', TASKLANE_RECONCILER_MIN_AGE_MS: '1000' })
  const report = await worker.reconciler.runOnce()
  t.equal(report.repaired.queued_job_missing, 1)
  t.same((await lease(A, { types: ['job'] })).body.items.map((i) => i.task.id), [task.id], 'leased after the repair')
  // And a type registered while the worker runs reaches it too, with no restart.
  await put(A, 'later', { executor: { kind: 'pull' } })
  const later = await create(A, { type: 'later' })
  await h.deps.queues.get('acme/later').remove(later.id)
  await h.sql`update tasks set updated_at = now() - interval '1 hour' where id = ${later.id}`
  await waitFor(async () => (await worker.reconciler.runOnce()).repaired.queued_job_missing === 1, 5_000)
  const metrics = await worker.registry.metrics()
  t.match(metrics, /tasklane_queue_backlog\{queue="acme\/later"[^}]*\} 1/, 'the new queue is in the worker\'s queue metrics, tenant-labelled')
})

t.test('OpenAPI describes every new route', async (t) => {
  const { h } = await setup(t)
  const doc = h.app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const expected = {
    '/v1/task-types': ['get'], '/v1/task-types/{name}': ['get', 'put', 'delete'], '/v1/task-types/{name}/rotate-secret': ['post'],
    '/v1/leases': ['post'], '/v1/leases/{leaseId}/heartbeat': ['post'], '/v1/leases/{leaseId}/complete': ['post'], '/v1/leases/{leaseId}/fail': ['post'],
  }
  for (const [path, methods] of Object.entries(expected)) {
    for (const method of methods) t.ok(doc.paths[path]?.[method], `${method.toUpperCase()} ${path}`)
  }
})

t.test('types that share a queue: a lease for one type passes over the other\'s tasks and leaves them ready', async (t) => {
  const { put, create, lease } = await setup(t)
  await put(A, 'first', { queue: 'shared', executor: { kind: 'pull' }, defaults: { priority: 'critical' } })
  await put(A, 'second', { queue: 'shared', executor: { kind: 'pull' } })
  const a = await create(A, { type: 'first' })
  const b = await create(A, { type: 'second' })
  t.same((await lease(A, { types: ['second'], max: 5 })).body.items.map((i) => i.task.id), [b.id], 'the other type\'s task at the head was passed over')
  t.same((await lease(A, { types: ['first'], max: 5 })).body.items.map((i) => i.task.id), [a.id], 'and is still there for its own workers')
})

t.test('pull tasks and dependencies: a leased dependent receives its dependencies\' results; completing a pulled dependency unblocks its dependents; results over the cap fail', async (t) => {
  const { h, put, lease, call, get } = await setup(t, { TASKLANE_MAX_RESULT_BYTES: '1000' })
  await put(A, 'extract', { executor: { kind: 'pull' } })
  await put(A, 'load', { executor: { kind: 'pull' } })
  const batch = await h.app.inject({
    method: 'POST', url: '/v1/tasks/batch', headers: A,
    payload: { tasks: [{ type: 'extract', payload: { file: 'a.csv' } }, { type: 'load', payload: {}, dependsOn: ['#0'] }] },
  })
  t.equal(batch.statusCode, 202, batch.body)
  const [extract, load] = batch.json().items as { id: string }[]
  t.same((await lease(A, { types: ['load'] })).body.items, [], 'the dependent waits')
  const first = (await lease(A, { types: ['extract'] })).body.items[0]!
  t.equal(first.task.id, extract!.id)
  t.equal((first.task as { dependencies?: unknown }).dependencies, undefined, 'a task without dependencies has none')
  t.equal((await call(A, first.leaseId, 'complete', { result: { rows: 3 } })).statusCode, 200)
  const second = await waitFor(async () => (await lease(A, { types: ['load'] })).body.items[0], 10_000)
  t.equal(second.task.id, load!.id, 'completing the pulled dependency made the dependent ready')
  t.same((second.task as { dependencies?: unknown }).dependencies, { [extract!.id]: { type: 'extract', status: 'completed', result: { rows: 3 } } })
  t.equal((await call(A, second.leaseId, 'complete', { result: { big: 'x'.repeat(2_000) } })).statusCode, 200)
  t.match(await get(load!.id), { status: 'failed', error: { code: 'RESULT_TOO_LARGE' } }, 'the result cap holds for pull workers too')
})

/** The dependent's own state: whether it still waits for a dependency. */
const waiting = async (h: Harness, id: string) =>
  (await h.sql<{ status: string, blocked: number }[]>`select status, blocked_count as blocked from tasks where id = ${id}`)[0]

t.test('a leased task that gains dependents while it runs settles them when it ends, completed or failed', async (t) => {
  const { h, put, create, lease, call } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const done = await create(A, { type: 'job' })
  const broken = await create(A, { type: 'job' })
  const leased = (await lease(A, { types: ['job'], max: 2 })).body.items
  t.same(leased.map((l) => l.task.id).sort(), [done.id, broken.id].sort())
  // Made after the lease: the task had no dependents when the worker took it.
  const after = await create(A, { type: 'job', dependsOn: [done.id] })
  const doomed = await create(A, { type: 'job', dependsOn: [broken.id] })
  t.match(await waiting(h, after.id), { status: 'queued', blocked: 1 })
  const leaseOf = (id: string) => leased.find((l) => l.task.id === id)!.leaseId
  t.equal((await call(A, leaseOf(done.id), 'complete', { result: {} })).statusCode, 200)
  t.match(await waiting(h, after.id), { status: 'queued', blocked: 0 }, 'completing the dependency released its dependent')
  const next = await waitFor(async () => (await lease(A, { types: ['job'] })).body.items[0], 10_000)
  t.equal(next.task.id, after.id, 'and the dependent was dispatched')
  t.equal((await call(A, leaseOf(broken.id), 'fail', { error: { message: 'no' }, retryable: false })).statusCode, 200)
  t.match(await h.sql`select status, error from tasks where id = ${doomed.id}`, [{ status: 'failed', error: { code: 'DEPENDENCY_FAILED' } }],
    'failing the dependency failed its dependent')
})

t.test('a dependent created while its leased dependency completes is never missed', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const task = await create(A, { type: 'job' })
  const l = (await lease(A, { types: ['job'] })).body.items[0]!
  // The task row is held locked, so that the create (which locks it to mark it has dependents)
  // queues first and the complete, which started before the create commits, queues behind it.
  const lockWaits = async () => Number((await h.sql<{ n: string }[]>`
    select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`)[0]!.n)
  let unlock!: () => void
  const unlocked = new Promise<void>((resolve) => { unlock = resolve })
  let locked!: () => void
  const isLocked = new Promise<void>((resolve) => { locked = resolve })
  const holder = h.sql.begin(async (tx) => {
    await tx`select 1 from tasks where id = ${task.id} for no key update`
    locked()
    await unlocked
  })
  await isLocked
  const creating = create(A, { type: 'job', dependsOn: [task.id] })
  await waitFor(async () => (await lockWaits()) >= 1, 10_000)
  const completing = call(A, l.leaseId, 'complete', { result: { ok: true } })
  await waitFor(async () => (await lockWaits()) >= 2, 10_000)
  unlock()
  await holder
  const dependent = await creating
  t.equal((await completing).statusCode, 200)
  t.equal((await get(task.id)).status, 'completed')
  t.match(await waiting(h, dependent.id), { status: 'queued', blocked: 0 }, 'the dependent does not wait for a completed task')
  const next = await waitFor(async () => (await lease(A, { types: ['job'] })).body.items[0], 10_000)
  t.equal(next.task.id, dependent.id, 'and it was dispatched')
})

t.test('completes that arrive together share a statement; each keeps its own answer', async (t) => {
  const { h, put, create, lease, call, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const tasks = await Promise.all(Array.from({ length: 8 }, () => create(A, { type: 'job' })))
  const leased = (await lease(A, { types: ['job'], max: 8 })).body.items
  t.equal(leased.length, 8)
  const dependent = await create(A, { type: 'job', dependsOn: [leased[0]!.task.id] })
  // One lease is completed twice at once, one is retried, one named in upper case.
  const calls = await Promise.all([
    ...leased.slice(0, 6).map((l, i) => call(A, i === 5 ? l.leaseId.toUpperCase() : l.leaseId, 'complete', { result: { i } })),
    call(A, leased[1]!.leaseId, 'complete', { result: { again: true } }),
    call(A, leased[6]!.leaseId, 'fail', { error: { message: 'later' } }),
    call(B, leased[7]!.leaseId, 'complete', { result: {} }),
  ])
  const codes = calls.map((c) => c.statusCode)
  t.same(codes.slice(0, 1), [200])
  t.same(codes.slice(2, 6), [200, 200, 200, 200])
  t.same([codes[1], codes[6]].sort(), [200, 409], 'one of the two completes of a lease records, the other is lease-lost')
  t.equal(codes[7], 200, 'the failure with attempts left is a retry')
  t.equal(codes[8], 409, 'another tenant cannot end the lease')
  for (const l of leased.slice(0, 6)) t.equal((await get(l.task.id)).status, 'completed')
  t.match(await get(leased[6]!.task.id), { status: 'queued', error: { message: 'later' } })
  t.equal((await get(leased[7]!.task.id)).status, 'running')
  t.same((await attempts(h, leased[0]!.task.id)).map((a) => a.outcome), ['completed'])
  t.same((await attempts(h, leased[6]!.task.id)).map((a) => a.outcome), ['failed'])
  t.match(await waiting(h, dependent.id), { status: 'queued', blocked: 0 }, 'the task with a dependent released it')
  t.equal(tasks.length, 8)
})

t.test('one lease request claims its tasks together: in priority order, passing over a task that ended while its job waited', async (t) => {
  const { h, put, create, lease, get } = await setup(t)
  await put(A, 'job', { executor: { kind: 'pull' } })
  const low = await create(A, { type: 'job', priority: 'low' })
  const normal = await create(A, { type: 'job', priority: 'normal' })
  const gone = await create(A, { type: 'job', priority: 'high' })
  const critical = await create(A, { type: 'job', priority: 'critical' })
  const extra = await create(A, { type: 'job', priority: 'low' })
  // Ended in Postgres behind BullMQ's back: its job is still ready.
  await h.sql`update tasks set status = 'cancelled', finished_at = now() where id = ${gone.id}`
  const got = (await lease(A, { types: ['job'], max: 3, workerId: 'w-batch' })).body.items
  t.same(got.map((i) => i.task.id), [critical.id, normal.id, low.id], 'the three ready tasks of highest priority, in that order')
  t.equal(new Set(got.map((i) => i.leaseId)).size, 3, 'each on its own lease')
  for (const item of got) t.match(await get(item.task.id), { status: 'running', attempts: 1 })
  t.equal((await get(gone.id)).status, 'cancelled')
  const queue = h.deps.queues.get('acme/job')
  t.equal(await (await queue.getJob(gone.id))?.getState(), 'completed', 'the ended task\'s job was finished instead of leased')
  t.same((await lease(A, { types: ['job'], max: 5 })).body.items.map((i) => i.task.id), [extra.id], 'what is left')
})
