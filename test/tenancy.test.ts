import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness } from './helpers/harness.ts'

const KEY_A = 'tenant-a-key-for-tenancy-0001'
const KEY_B = 'tenant-b-key-for-tenancy-0002'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const A = bearer(KEY_A)
const B = bearer(KEY_B)

type Method = 'GET' | 'POST' | 'DELETE' | 'PUT' | 'PATCH'

t.test('tenant B gets 404 for tenant A\'s task on every task route, and A\'s task is untouched', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const create = async (headers: Record<string, string>, body: Record<string, unknown>) => {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers, payload: body })
    t.equal(res.statusCode, 202)
    return res.json() as { id: string, status: string }
  }
  const queued = await create(A, { type: 'sleep', payload: { ms: 1 }, delayMs: 3_600_000 })
  // A terminal task too, so routes that act only on terminal tasks (retry, delete) meet one.
  const finished = await create(A, { type: 'echo', payload: { n: 1 } })
  await h.sql`update tasks set status = 'failed', finished_at = now() where id = ${finished.id}`

  // Every route with a task id, as the service publishes them: routes added later are covered too.
  const doc = h.app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const idRoutes: { method: Method, path: string }[] = []
  for (const [path, ops] of Object.entries(doc.paths)) {
    if (!path.startsWith('/v1/tasks/{id}')) continue
    for (const method of Object.keys(ops)) idRoutes.push({ method: method.toUpperCase() as Method, path })
  }
  const seen = idRoutes.map((r) => `${r.method} ${r.path}`)
  for (const known of ['GET /v1/tasks/{id}', 'GET /v1/tasks/{id}/attempts']) t.ok(seen.includes(known), `${known} is covered`)
  t.comment(`task routes checked: ${seen.join(', ')}`)

  const missing = (await h.app.inject({ url: '/v1/tasks/0193e1d2-0000-7000-8000-000000000000', headers: B })).json()
  for (const task of [queued, finished]) {
    for (const route of idRoutes) {
      const url = route.path.replace('{id}', task.id)
      const res = await h.app.inject({ method: route.method, url, headers: B, ...(route.method === 'POST' ? { payload: {} } : {}) })
      t.equal(res.statusCode, 404, `B: ${route.method} ${route.path} on A's ${task.status} task`)
      const body = res.json()
      t.equal(body.code, missing.code, 'the same problem as for a task that does not exist')
      t.equal(body.title, missing.title)
    }
  }
  const [queuedRow] = await h.sql`select status, tenant from tasks where id = ${queued.id}`
  const [finishedRow] = await h.sql`select status, tenant from tasks where id = ${finished.id}`
  t.same(queuedRow, { status: 'queued', tenant: 'acme' }, 'B could not cancel A\'s task')
  t.same(finishedRow, { status: 'failed', tenant: 'acme' }, 'B could not retry or delete A\'s task')
  for (const task of [queued, finished]) {
    t.equal((await h.app.inject({ url: `/v1/tasks/${task.id}`, headers: A })).statusCode, 200, 'A still reads its task')
  }
})

t.test('lists, idempotency keys, batches and stats are scoped by tenant', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const idem = { 'idempotency-key': 'order-42' }
  const a1 = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...A, ...idem }, payload: { type: 'echo', payload: { who: 'a' } } })
  t.equal(a1.statusCode, 202)
  const b1 = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...B, ...idem }, payload: { type: 'echo', payload: { who: 'b' } } })
  t.equal(b1.statusCode, 202, 'B\'s use of the same key is a new task, not a replay of A\'s (and not a 409)')
  t.not(b1.json().id, a1.json().id)
  const a2 = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: { ...A, ...idem }, payload: { type: 'echo', payload: { who: 'a' } } })
  t.equal(a2.statusCode, 200, 'A\'s replay still finds A\'s task')
  t.equal(a2.json().id, a1.json().id)

  const aIds = new Set([a1.json().id as string])
  for (let i = 0; i < 5; i++) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', headers: A, payload: { type: 'echo', payload: { i } } })
    aIds.add(res.json().id)
  }
  const batch = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', headers: A, payload: { tasks: [{ type: 'echo' }, { type: 'echo' }] } })
  t.equal(batch.statusCode, 202)
  for (const item of batch.json().items) aIds.add(item.id)

  const listAll = async (headers: Record<string, string>, query = '') => {
    const ids: string[] = []
    let cursor: string | null = null
    for (let page = 0; page < 50; page++) {
      const res = await h.app.inject({ url: `/v1/tasks?limit=2${query}${cursor ? `&cursor=${cursor}` : ''}`, headers })
      t.equal(res.statusCode, 200)
      const body = res.json() as { items: { id: string }[], nextCursor: string | null }
      ids.push(...body.items.map((i) => i.id))
      cursor = body.nextCursor
      if (!cursor) break
    }
    return ids
  }
  const bIds = await listAll(B)
  t.same(bIds, [b1.json().id], 'B sees only its own task')
  for (const query of ['&status=queued', '&type=echo', '&queue=default', `&createdAfter=${encodeURIComponent(new Date(0).toISOString())}`]) {
    t.notOk((await listAll(B, query)).some((id) => aIds.has(id)), `B's list with ${query} has none of A's tasks`)
  }
  t.same(new Set(await listAll(A)), aIds, 'A sees all of its tasks and nothing of B')

  // A cursor made from A's list does not open A's tasks to B.
  const aPage = (await h.app.inject({ url: '/v1/tasks?limit=1', headers: A })).json()
  const bWithACursor = await h.app.inject({ url: `/v1/tasks?cursor=${aPage.nextCursor}`, headers: B })
  t.notOk((bWithACursor.json().items ?? []).some((i: { id: string }) => aIds.has(i.id)))

  const stats = (await h.app.inject({ url: '/v1/stats', headers: B })).json()
  t.equal(stats.tasks.total, 1, 'B\'s stats count only B\'s tasks')
  t.equal((await h.app.inject({ url: '/v1/stats', headers: A })).json().tasks.total, aIds.size)
})
