import t from 'tap'
import { startHarness } from './helpers/harness.ts'

t.test('a batch of 1000 is stored in one go and enqueued in bulk, in the order given; 1001 or none is a 400', async (t) => {
  // A window as large as the batch: this test is about the bulk enqueue, not fair sharing.
  const h = await startHarness(t, { env: { TASKLANE_DISPATCH_WINDOW: '1000' } })
  const tasks = Array.from({ length: 1000 }, (_, i) => ({ type: i % 2 ? 'echo' : 'sleep', payload: i % 2 ? { i } : { ms: 1 } }))
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks } })
  t.equal(res.statusCode, 202)
  const items = res.json().items
  t.equal(items.length, 1000)
  t.same(items.slice(0, 2).map((x: { type: string }) => x.type), ['sleep', 'echo'])
  t.same(items[1].payload, { i: 1 })
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row!.n, 1000)
  const counts = await h.deps.queues.get('default').getJobCounts('prioritized', 'waiting')
  t.equal((counts.prioritized ?? 0) + (counts.waiting ?? 0), 1000, 'every task has its job')

  const tooMany = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: [...tasks, tasks[0]] } })
  t.equal(tooMany.statusCode, 400, '1001 is too many')
  const empty = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: [] } })
  t.equal(empty.statusCode, 400)
})

t.test('one invalid task rejects the whole batch, naming the index of each bad item; nothing is stored', async (t) => {
  const h = await startHarness(t)
  const res = await h.app.inject({
    method: 'POST', url: '/v1/tasks/batch',
    payload: { tasks: [
      { type: 'echo', payload: {} },
      { type: 'sleep', payload: { ms: 'soon' } },
      { type: 'echo', payload: {} },
      { type: 'no-such-type', payload: {} },
    ] },
  })
  t.equal(res.statusCode, 400)
  t.match(res.headers['content-type'], /application\/problem\+json/)
  const body = res.json()
  const paths = body.errors.map((e: { path: string }) => e.path)
  t.ok(paths.some((p: string) => p.startsWith('/tasks/1/payload')), `item 1 named: ${paths}`)
  t.ok(paths.includes('/tasks/3/type'), 'item 3 named')
  t.notOk(paths.some((p: string) => /^\/tasks\/[02]\//.test(p)), 'the good items are not blamed')
  const schema = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: [{ type: 'echo' }, { payload: {} }] } })
  t.equal(schema.statusCode, 400)
  t.ok(schema.json().errors.some((e: { path: string }) => e.path === '/tasks/1/type'), 'schema errors name the index too')
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row!.n, 0, 'nothing stored')
})

t.test('20 concurrent creates with one Idempotency-Key make one task; the rest replay it', async (t) => {
  const h = await startHarness(t)
  const body = { type: 'echo', payload: { hello: 'once' } }
  const results = await Promise.all(Array.from({ length: 20 }, () =>
    h.app.inject({ method: 'POST', url: '/v1/tasks', payload: body, headers: { 'idempotency-key': 'race-1' } })))
  const ids = new Set(results.map((r) => r.json().id))
  t.equal(ids.size, 1, 'one task id for all 20')
  t.same(results.map((r) => r.statusCode).sort(), [...Array(19).fill(200), 202], 'one 202, nineteen 200')
  t.equal(results.filter((r) => r.headers['idempotent-replayed'] === 'true').length, 19)
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row!.n, 1, 'one row')
  const counts = await h.deps.queues.get('default').getJobCounts('prioritized', 'waiting')
  t.equal((counts.prioritized ?? 0) + (counts.waiting ?? 0), 1, 'one job')

  const other = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: { ...body, payload: { hello: 'twice' } }, headers: { 'idempotency-key': 'race-1' } })
  t.equal(other.statusCode, 409, 'the same key with another body')
  t.equal(other.json().type, 'urn:tasklane:problem:idempotency-conflict')
})

t.test('batches are idempotent too: a replay returns the same tasks, another body is 409', async (t) => {
  const h = await startHarness(t)
  const payload = { tasks: [{ type: 'echo', payload: { n: 1 } }, { type: 'echo', payload: { n: 2 } }] }
  const headers = { 'idempotency-key': 'batch-1' }
  const [a, b] = await Promise.all([
    h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload, headers }),
    h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload, headers }),
  ])
  t.same([a.statusCode, b.statusCode].sort(), [200, 202])
  t.same(a.json().items.map((x: { id: string }) => x.id), b.json().items.map((x: { id: string }) => x.id), 'the same tasks, in order')
  const replay = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload, headers })
  t.equal(replay.statusCode, 200)
  t.equal(replay.headers['idempotent-replayed'], 'true')
  const changed = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: [...payload.tasks, { type: 'echo' }] }, headers })
  t.equal(changed.statusCode, 409)
  const [row] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks`
  t.equal(row!.n, 2)
})
