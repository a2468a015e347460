import t from 'tap'
import { startHarness, type Harness } from './helpers/harness.ts'

const ENV = { TASKLANE_IDEMPOTENCY_TTL: '1h' }

async function post (h: Harness, url: string, payload: unknown, key: string) {
  const res = await h.app.inject({ method: 'POST', url, payload: payload as object, headers: { 'idempotency-key': key } })
  return { status: res.statusCode, body: res.json() }
}
// Moves a key's tasks back in time, as if they were created two hours ago (past the 1h TTL).
const age = (h: Harness, ids: string[]) =>
  h.sql`update tasks set created_at = created_at - interval '2 hours' where id = any(${ids}::uuid[])`

t.test('a key is honoured for TASKLANE_IDEMPOTENCY_TTL, and a key reused after it makes a new task', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const body = { type: 'echo', payload: { n: 1 } }
  const first = await post(h, '/v1/tasks', body, 'key-1')
  t.equal(first.status, 202)
  const replay = await post(h, '/v1/tasks', body, 'key-1')
  t.equal(replay.body.id, first.body.id, 'within the TTL: the same task')
  t.equal((await post(h, '/v1/tasks', { ...body, payload: { n: 2 } }, 'key-1')).status, 409, 'within the TTL: another body is a conflict')

  await age(h, [first.body.id])
  const again = await post(h, '/v1/tasks', { ...body, payload: { n: 2 } }, 'key-1')
  t.equal(again.status, 202, 'after the TTL: accepted as new')
  t.not(again.body.id, first.body.id, 'a new task')
  t.same(again.body.payload, { n: 2 })
  t.equal((await post(h, '/v1/tasks', { ...body, payload: { n: 2 } }, 'key-1')).body.id, again.body.id, 'and the key now names the new task')
  const old = await h.getTask(first.body.id)
  t.equal(old.idempotencyKey, null, 'the old task stays, without its key')
})

t.test('batch keys: reusable after the TTL, and never taken by a single create', async (t) => {
  const h = await startHarness(t, { env: ENV })
  // A single create whose key looks like a batch item's key used to take it.
  const single = await post(h, '/v1/tasks', { type: 'echo', payload: {} }, 'b/0')
  t.equal(single.status, 202)
  const batch = { tasks: [{ type: 'echo', payload: { i: 0 } }, { type: 'echo', payload: { i: 1 } }] }
  const first = await post(h, '/v1/tasks/batch', batch, 'b')
  t.equal(first.status, 202, `the batch is not blocked by the single create's key: ${JSON.stringify(first.body)}`)
  const ids = first.body.items.map((x: { id: string }) => x.id)
  t.equal((await post(h, '/v1/tasks/batch', batch, 'b')).body.items[0].id, ids[0], 'a replay within the TTL')
  t.equal((await post(h, '/v1/tasks', { type: 'echo', payload: {} }, 'b/0')).body.id, single.body.id, 'the single key is its own')

  await age(h, ids)
  const again = await post(h, '/v1/tasks/batch', batch, 'b')
  t.equal(again.status, 202)
  t.notOk(again.body.items.some((x: { id: string }) => ids.includes(x.id)), 'after the TTL: new tasks')
  const stats = (await h.app.inject({ url: '/v1/stats' })).json()
  t.equal(stats.tasks.total, 5, 'one single, two batches of two')
})
