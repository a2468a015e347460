import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, type Harness } from './helpers/harness.ts'

// Creating tasks with dependencies through the API, no worker: what is stored, what is
// dispatched (nothing that still waits), and every way to get dependsOn wrong.

const KEY_A = 'tenant-a-key-for-dependencies-01'
const KEY_B = 'tenant-b-key-for-dependencies-02'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const A = bearer(KEY_A)
const B = bearer(KEY_B)

type Task = { id: string, status: string, dependsOn: string[], blockedBy: string[], onDependencyFailure: string, error: { code: string } | null }
type Problem = { status: number, errors: { path: string, message: string }[] }

async function post (h: Harness, url: string, payload: unknown, headers: Record<string, string> = A) {
  return h.app.inject({ method: 'POST', url, payload: payload as object, headers })
}
const taskCount = async (h: Harness): Promise<number> => (await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`)[0]!.n
const edgeCount = async (h: Harness): Promise<number> => (await h.sql<{ n: number }[]>`select count(*)::int as n from task_dependencies`)[0]!.n
const hasJob = async (h: Harness, task: { id: string }): Promise<boolean> => Boolean(await h.deps.queues.get('default').getJob(task.id))

t.test('a single create waits for an unfinished dependency: queued, blockedBy set, no job in Redis', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const first = (await post(h, '/v1/tasks', { type: 'sleep', payload: { ms: 1 }, delayMs: 3_600_000 })).json() as Task
  const res = await post(h, '/v1/tasks', { type: 'echo', payload: { n: 1 }, dependsOn: [first.id] })
  t.equal(res.statusCode, 202)
  const second = res.json() as Task
  t.equal(second.status, 'queued')
  t.same(second.dependsOn, [first.id])
  t.same(second.blockedBy, [first.id])
  t.equal(second.onDependencyFailure, 'fail', 'the default policy')
  t.same((await h.app.inject({ url: `/v1/tasks/${second.id}`, headers: A })).json(), second, 'GET shows the same')
  t.ok(await hasJob(h, first), 'the dependency has its job')
  t.notOk(await hasJob(h, second), 'the dependent has none while it waits')
  const listed = (await h.app.inject({ url: '/v1/tasks', headers: A })).json().items as Task[]
  t.same(listed.map((x) => x.blockedBy), [[first.id], []], 'the list shows blockedBy too')
  t.same((await h.app.inject({ url: `/v1/tasks/${first.id}`, headers: A })).json().dependsOn, [], 'a task without dependencies has empty lists')

  // A dependency that completed already leaves nothing to wait for: dispatched at once.
  await h.sql`update tasks set status = 'completed', result = '{"ok":true}', finished_at = now() where id = ${first.id}`
  const third = (await post(h, '/v1/tasks', { type: 'echo', dependsOn: [first.id] })).json() as Task
  t.same([third.status, third.blockedBy], ['queued', []])
  t.ok(await hasJob(h, third), 'enqueued at once')
})

t.test('a dependency that failed already: "fail" stores the task failed with DEPENDENCY_FAILED, "run" dispatches it', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const failed = (await post(h, '/v1/tasks', { type: 'echo', delayMs: 3_600_000 })).json() as Task
  await h.sql`update tasks set status = 'failed', finished_at = now() where id = ${failed.id}`
  const doomed = (await post(h, '/v1/tasks', { type: 'echo', dependsOn: [failed.id] })).json() as Task
  t.equal(doomed.status, 'failed')
  t.equal(doomed.error?.code, 'DEPENDENCY_FAILED')
  t.notOk(await hasJob(h, doomed))
  const runs = (await post(h, '/v1/tasks', { type: 'echo', dependsOn: [failed.id], onDependencyFailure: 'run' })).json() as Task
  t.same([runs.status, runs.blockedBy, runs.onDependencyFailure], ['queued', [], 'run'])
  t.ok(await hasJob(h, runs))
})

t.test('a batch names earlier items as "#index": extract, transform x3, load', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const res = await post(h, '/v1/tasks/batch', {
    tasks: [
      { type: 'echo', payload: { step: 'extract' } },
      { type: 'echo', payload: { step: 'transform', part: 0 }, dependsOn: ['#0'] },
      { type: 'echo', payload: { step: 'transform', part: 1 }, dependsOn: ['#0'] },
      { type: 'echo', payload: { step: 'transform', part: 2 }, dependsOn: ['#0'] },
      { type: 'echo', payload: { step: 'load' }, dependsOn: ['#1', '#2', '#3'], onDependencyFailure: 'run' },
    ],
  })
  t.equal(res.statusCode, 202, res.body)
  const items = res.json().items as Task[]
  const [extract, t0, t1, t2, load] = items
  t.same(extract!.blockedBy, [])
  for (const transform of [t0, t1, t2]) t.same([transform!.dependsOn, transform!.blockedBy], [[extract!.id], [extract!.id]])
  t.same(load!.dependsOn, [t0!.id, t1!.id, t2!.id])
  t.same(load!.blockedBy, [t0!.id, t1!.id, t2!.id])
  t.equal(load!.onDependencyFailure, 'run')
  t.same(await Promise.all(items.map((x) => hasJob(h, x))), [true, false, false, false, false], 'only the first is dispatched')
  t.equal(await edgeCount(h), 6)
  const [row] = await h.sql<{ hasDependents: boolean, blockedCount: number }[]>`
    select has_dependents as "hasDependents", blocked_count as "blockedCount" from tasks where id = ${load!.id}`
  t.same(row, { hasDependents: false, blockedCount: 3 })
})

t.test('bad dependsOn: 400 naming the item and field, nothing stored', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const mine = (await post(h, '/v1/tasks', { type: 'echo', delayMs: 3_600_000 })).json() as Task
  const theirs = (await post(h, '/v1/tasks', { type: 'echo', delayMs: 3_600_000 }, B)).json() as Task
  const before = await taskCount(h)
  const unknown = '0193e1d2-0000-7000-8000-000000000000'
  const ids = (n: number) => Array.from({ length: n }, (_, i) => `0193e1d2-0000-7000-8000-${String(i).padStart(12, '0')}`)
  const cases: { name: string, url: string, body: unknown, paths: string[] }[] = [
    { name: 'an unknown id', url: '/v1/tasks', body: { type: 'echo', dependsOn: [mine.id, unknown] }, paths: ['/dependsOn/1'] },
    { name: "another tenant's id", url: '/v1/tasks', body: { type: 'echo', dependsOn: [theirs.id] }, paths: ['/dependsOn/0'] },
    { name: 'not an id', url: '/v1/tasks', body: { type: 'echo', dependsOn: ['abc'] }, paths: ['/dependsOn/0'] },
    { name: 'a batch reference outside a batch', url: '/v1/tasks', body: { type: 'echo', dependsOn: ['#0'] }, paths: ['/dependsOn/0'] },
    { name: 'the same id twice', url: '/v1/tasks', body: { type: 'echo', dependsOn: [mine.id, mine.id] }, paths: ['/dependsOn/1'] },
    { name: 'more than 100', url: '/v1/tasks', body: { type: 'echo', dependsOn: ids(101) }, paths: ['/dependsOn'] },
    { name: 'a later batch item', url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ['#2'] }, { type: 'echo' }] }, paths: ['/tasks/1/dependsOn/0'] },
    { name: 'itself', url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ['#0', '#1'] }] }, paths: ['/tasks/1/dependsOn/1'] },
    { name: 'a missing batch item', url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ['#7'] }] }, paths: ['/tasks/1/dependsOn/0'] },
    { name: 'an unknown id in a batch', url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ['#0', unknown] }] }, paths: ['/tasks/1/dependsOn/1'] },
    { name: "another tenant's id in a batch", url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo', dependsOn: [theirs.id] }] }, paths: ['/tasks/0/dependsOn/0'] },
    { name: 'more than 100 in a batch', url: '/v1/tasks/batch', body: { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ids(101) }] }, paths: ['/tasks/1/dependsOn'] },
    { name: 'a bad policy', url: '/v1/tasks', body: { type: 'echo', dependsOn: [mine.id], onDependencyFailure: 'ignore' }, paths: ['/onDependencyFailure'] },
  ]
  for (const c of cases) {
    const res = await post(h, c.url, c.body)
    t.equal(res.statusCode, 400, `${c.name}: 400`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    const problem = res.json() as Problem
    t.ok(c.paths.every((p) => problem.errors.some((e) => e.path === p)), `${c.name}: names ${c.paths.join(', ')} (got ${JSON.stringify(problem.errors)})`)
  }
  t.equal(await taskCount(h), before, 'nothing was stored')
  t.equal(await edgeCount(h), 0, 'no edge was stored')
  const [row] = await h.sql<{ hasDependents: boolean }[]>`select has_dependents as "hasDependents" from tasks where id = ${mine.id}`
  t.equal(row!.hasDependents, false, 'a rejected create leaves its would-be dependencies untouched')
})

t.test('an idempotent replay of a create with dependencies returns the same task and its lists', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const first = (await post(h, '/v1/tasks', { type: 'echo', delayMs: 3_600_000 })).json() as Task
  const body = { type: 'echo', dependsOn: [first.id] }
  const headers = { ...A, 'idempotency-key': 'dep-replay-1' }
  const created = await post(h, '/v1/tasks', body, headers)
  const replay = await post(h, '/v1/tasks', body, headers)
  t.equal(created.statusCode, 202)
  t.equal(replay.statusCode, 200)
  t.same(replay.json(), created.json())
  t.equal((await post(h, '/v1/tasks', { ...body, onDependencyFailure: 'run' }, headers)).statusCode, 409, 'same key, different body')
  const batch = { tasks: [{ type: 'echo' }, { type: 'echo', dependsOn: ['#0'] }] }
  const batchHeaders = { ...A, 'idempotency-key': 'dep-replay-2' }
  const b1 = await post(h, '/v1/tasks/batch', batch, batchHeaders)
  const b2 = await post(h, '/v1/tasks/batch', batch, batchHeaders)
  t.same([b1.statusCode, b2.statusCode], [202, 200])
  t.same(b2.json().items.map((x: Task) => x.blockedBy), b1.json().items.map((x: Task) => x.blockedBy))
  t.equal(await edgeCount(h), 2, 'the replays stored no edge')
})
