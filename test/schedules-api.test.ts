import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { bearer } from './helpers/auth.ts'
import { startHarness, type Harness } from './helpers/harness.ts'

const KEY_A = 'tenant-a-key-for-schedules-01'
const KEY_B = 'tenant-b-key-for-schedules-02'
const ENV = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `acme:${KEY_A},globex:${KEY_B}` }
const A = bearer(KEY_A)
const B = bearer(KEY_B)

type Json = Record<string, any>

async function call (h: Harness, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, headers: Record<string, string>, payload?: unknown) {
  const res = await h.app.inject({ method, url, headers, ...(payload === undefined ? {} : { payload: payload as Json }) })
  return { status: res.statusCode, body: res.body ? res.json() as Json : null, headers: res.headers }
}

const MONTHLY = { name: 'monthly-report', cron: '0 2 1 * *', timezone: 'Europe/Berlin', task: { type: 'echo', payload: { report: 'monthly' }, tags: ['reports'] } }

t.test('create, read with upcoming, list by pages, change, pause, resume, trigger and delete', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const created = await call(h, 'POST', '/v1/schedules', A, { ...MONTHLY, startAt: '2026-01-01T00:00:00Z', endAt: '2099-01-01T00:00:00Z' })
  t.equal(created.status, 201, JSON.stringify(created.body))
  const s = created.body!
  t.equal(created.headers.location, `/v1/schedules/${s.id}`)
  t.match(s, { name: 'monthly-report', cron: '0 2 1 * *', timezone: 'Europe/Berlin', overlap: 'skip', catchUp: 'latest', paused: false, lastRunAt: null, lastTaskId: null })
  t.same(s.task, MONTHLY.task)
  const one = (await call(h, 'GET', `/v1/schedules/${s.id}`, A)).body!
  t.equal(one.upcoming.length, 5)
  t.equal(one.upcoming[0], s.nextRunAt, 'nextRunAt is the first upcoming run')
  for (const run of one.upcoming) {
    // 02:00 in Berlin is 01:00 or 00:00 UTC, on the 1st.
    t.match(run, /^\d{4}-\d{2}-01T0[01]:00:00\.000Z$/, `${run} is the 1st at 02:00 Berlin`)
  }

  // upcoming stays within endAt
  const ending = await call(h, 'POST', '/v1/schedules', A, { name: 'short', cron: '0 0 * * *', task: { type: 'echo' }, endAt: new Date(Date.now() + 2.5 * 86_400_000).toISOString() })
  t.equal(ending.status, 201)
  const upcoming = (await call(h, 'GET', `/v1/schedules/${ending.body!.id}`, A)).body!.upcoming
  t.ok(upcoming.length >= 2 && upcoming.length <= 3, `only the runs before endAt (${upcoming.length})`)

  await call(h, 'POST', '/v1/schedules', A, { name: 'third', cron: '*/5 * * * *', task: { type: 'echo' } })
  const page1 = (await call(h, 'GET', '/v1/schedules?limit=2', A)).body!
  t.equal(page1.items.length, 2)
  t.ok(page1.nextCursor)
  const page2 = (await call(h, 'GET', `/v1/schedules?limit=2&cursor=${page1.nextCursor}`, A)).body!
  t.equal(page2.items.length, 1)
  t.equal(page2.nextCursor, null)
  t.same(new Set([...page1.items, ...page2.items].map((x: Json) => x.name)), new Set(['monthly-report', 'short', 'third']))

  const patched = await call(h, 'PATCH', `/v1/schedules/${s.id}`, A, { cron: '30 3 * * *', overlap: 'allow' })
  t.equal(patched.status, 200)
  t.match(patched.body, { cron: '30 3 * * *', overlap: 'allow', name: 'monthly-report', timezone: 'Europe/Berlin' })
  t.not(patched.body!.nextRunAt, s.nextRunAt, 'the next run is worked out again')

  const paused = await call(h, 'POST', `/v1/schedules/${s.id}/pause`, A)
  t.equal(paused.status, 200)
  t.match(paused.body, { paused: true, nextRunAt: null })
  const resumed = await call(h, 'POST', `/v1/schedules/${s.id}/resume`, A)
  t.match(resumed.body, { paused: false, nextRunAt: patched.body!.nextRunAt })

  const triggered = await call(h, 'POST', `/v1/schedules/${s.id}/trigger`, A)
  t.equal(triggered.status, 202)
  t.match(triggered.body, { type: 'echo', status: 'queued', scheduleId: s.id, tags: ['reports'], payload: { report: 'monthly' } })
  t.ok(triggered.body!.scheduledFor)
  t.equal((await call(h, 'GET', `/v1/schedules/${s.id}`, A)).body!.lastTaskId, triggered.body!.id)

  t.equal((await call(h, 'DELETE', `/v1/schedules/${s.id}`, A)).status, 204)
  t.equal((await call(h, 'GET', `/v1/schedules/${s.id}`, A)).status, 404)
  const task = await call(h, 'GET', `/v1/tasks/${triggered.body!.id}`, A)
  t.equal(task.status, 200, 'its tasks stay')
  t.equal(task.body!.scheduleId, s.id)
})

t.test('bad input is a problem naming the field, and stores nothing', async (t) => {
  const h = await startHarness(t, { env: ENV })
  t.equal((await call(h, 'POST', '/v1/schedules', A, MONTHLY)).status, 201)
  const cases: [string, Json, number, string | null][] = [
    ['cron with 4 fields', { ...MONTHLY, name: 'x1', cron: '0 2 1 *' }, 400, '/cron'],
    ['cron out of range', { ...MONTHLY, name: 'x2', cron: '0 25 * * *' }, 400, '/cron'],
    ['cron that never matches', { ...MONTHLY, name: 'x3', cron: '0 0 31 2 *' }, 400, '/cron'],
    ['time zone', { ...MONTHLY, name: 'x4', timezone: 'Europe/Atlantis' }, 400, '/timezone'],
    ['payload field', { ...MONTHLY, name: 'x5', task: { type: 'sleep', payload: { ms: 'long' } } }, 400, '/task/payload/ms'],
    ['template field', { ...MONTHLY, name: 'x6', task: { type: 'echo', runAt: '2027-01-01T00:00:00Z' } }, 400, '/task/runAt'],
    ['too many tags', { ...MONTHLY, name: 'x7', task: { type: 'echo', tags: Array.from({ length: 11 }, (_, i) => `t${i}`) } }, 400, '/task/tags'],
    ['startAt after endAt', { ...MONTHLY, name: 'x8', startAt: '2030-01-02T00:00:00Z', endAt: '2030-01-01T00:00:00Z' }, 400, '/startAt'],
    ['overlap', { ...MONTHLY, name: 'x9', overlap: 'queue' }, 400, '/overlap'],
    ['unknown task type', { ...MONTHLY, name: 'x10', task: { type: 'fax' } }, 422, null],
    ['name taken', MONTHLY, 409, null],
  ]
  for (const [what, body, status, path] of cases) {
    const res = await call(h, 'POST', '/v1/schedules', A, body)
    t.equal(res.status, status, `${what}: ${status}`)
    t.match(res.headers['content-type'], /application\/problem\+json/)
    if (path) t.ok((res.body!.errors as Json[]).some((e) => e.path.startsWith(path)), `${what} names ${path}: ${JSON.stringify(res.body!.errors)}`)
  }
  const [{ n }] = await h.sql<{ n: number }[]>`select count(*)::int as n from schedules` as unknown as [{ n: number }]
  t.equal(n, 1, 'only the first schedule was stored')
  // The same rules on PATCH, and another tenant may use the name.
  const id = (await call(h, 'GET', '/v1/schedules', A)).body!.items[0].id
  t.equal((await call(h, 'PATCH', `/v1/schedules/${id}`, A, { timezone: 'Nowhere/Else' })).status, 400)
  t.equal((await call(h, 'PATCH', `/v1/schedules/${id}`, A, { startAt: '2031-01-01T00:00:00Z', endAt: '2030-01-01T00:00:00Z' })).status, 400)
  t.equal((await call(h, 'GET', `/v1/schedules/${id}`, A)).body!.timezone, 'Europe/Berlin', 'unchanged')
  t.equal((await call(h, 'POST', '/v1/schedules', B, MONTHLY)).status, 201, 'names are per tenant')
  const other = await call(h, 'POST', '/v1/schedules', A, { ...MONTHLY, name: 'other' })
  t.equal((await call(h, 'PATCH', `/v1/schedules/${other.body!.id}`, A, { name: 'monthly-report' })).status, 409, 'renaming onto a taken name')
})

t.test('another tenant\'s schedule is a 404 on every schedule route, and stays untouched', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const s = (await call(h, 'POST', '/v1/schedules', A, { ...MONTHLY, cron: '* * * * * *' })).body!
  const doc = h.app.swagger() as { paths: Record<string, Record<string, unknown>> }
  const routes = Object.entries(doc.paths).filter(([path]) => path.startsWith('/v1/schedules/{id}'))
    .flatMap(([path, ops]) => Object.keys(ops).map((m) => ({ method: m.toUpperCase() as 'GET', path })))
  t.equal(routes.length, 6, `every schedule route with an id: ${routes.map((r) => `${r.method} ${r.path}`).join(', ')}`)
  for (const r of routes) {
    const res = await call(h, r.method, r.path.replace('{id}', s.id), B, (r.method as string) === 'PATCH' ? { paused: true } : undefined)
    t.equal(res.status, 404, `B: ${r.method} ${r.path}`)
    t.equal(res.body!.code, 'SCHEDULE_NOT_FOUND')
  }
  t.same((await call(h, 'GET', '/v1/schedules', B)).body!.items, [], 'B lists none of A\'s')
  const after = (await call(h, 'GET', `/v1/schedules/${s.id}`, A)).body!
  t.match(after, { paused: false, name: 'monthly-report', lastTaskId: null }, 'A\'s schedule is as it was')
  const [{ n }] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks` as unknown as [{ n: number }]
  t.equal(n, 0, 'B triggered nothing')
})

t.test('the loop makes the due task through the create path; a paused schedule makes nothing', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const every = (await call(h, 'POST', '/v1/schedules', A, { name: 'every-second', cron: '* * * * * *', overlap: 'allow', task: { type: 'echo', payload: { hi: 1 }, priority: 'high', tags: ['tick'] } })).body!
  const paused = (await call(h, 'POST', '/v1/schedules', A, { name: 'paused', cron: '* * * * * *', paused: true, task: { type: 'echo' } })).body!
  t.equal(paused.nextRunAt, null)
  const deadline = Date.now() + 2_600
  while (Date.now() < deadline) {
    await h.deps.scheduleLoop.runOnce()
    await sleep(100)
  }
  const rows = (await h.sql<{ schedule_id: string, scheduled_for: string, priority: string }[]>`
    select schedule_id, scheduled_for, priority from tasks order by scheduled_for`).map((r) => ({ ...r, scheduled_for: new Date(r.scheduled_for) }))
  t.ok(rows.length >= 2, `tasks made: ${rows.length}`)
  t.ok(rows.every((r) => r.schedule_id === every.id), 'all by the running schedule, none by the paused one')
  t.equal(new Set(rows.map((r) => r.scheduled_for.getTime())).size, rows.length, 'one task per due time')
  t.ok(rows.every((r) => r.scheduled_for.getMilliseconds() === 0 && r.priority === 'high'))
  const listed = (await call(h, 'GET', '/v1/tasks?tag=tick', A)).body!
  t.equal(listed.items.length, rows.length, 'found by tag')
  t.match(listed.items[0], { scheduleId: every.id, tags: ['tick'], status: 'queued' })
  t.equal((await call(h, 'GET', '/v1/tasks?tag=tick', B)).body!.items.length, 0, 'not by another tenant')
})

t.test('tags: set at create, single and batch, filtered, bounded', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const one = await call(h, 'POST', '/v1/tasks', A, { type: 'echo', tags: ['billing', 'eu'] })
  t.equal(one.status, 202)
  t.same(one.body!.tags, ['billing', 'eu'])
  t.match(one.body, { scheduleId: null, scheduledFor: null })
  const batch = await call(h, 'POST', '/v1/tasks/batch', A, { tasks: [{ type: 'echo', tags: ['eu'] }, { type: 'echo' }] })
  t.equal(batch.status, 202)
  t.same(batch.body!.items.map((x: Json) => x.tags), [['eu'], []])
  t.same((await call(h, 'GET', '/v1/tasks?tag=eu', A)).body!.items.map((x: Json) => x.id).sort(), [one.body!.id, batch.body!.items[0].id].sort())
  t.same((await call(h, 'GET', '/v1/tasks?tag=billing', A)).body!.items.map((x: Json) => x.id), [one.body!.id])
  for (const tags of [Array.from({ length: 11 }, (_, i) => `t${i}`), [''], ['x'.repeat(65)]]) {
    const res = await call(h, 'POST', '/v1/tasks', A, { type: 'echo', tags })
    t.equal(res.status, 400, `tags ${JSON.stringify(tags).slice(0, 30)} refused`)
  }
  const plan = await h.sql.begin(async (tx) => {
    // Three rows: the planner would rather scan; with scans and the tenant's btree indexes
    // off the only way left to find a tag is the GIN index.
    await tx`set local enable_seqscan = off`
    await tx`set local enable_indexscan = off`
    return tx`explain select id from tasks where tags @> array['eu'] order by id desc limit 50`
  })
  const text = plan.map((r) => Object.values(r)[0]).join('\n')
  t.match(text, /tasks_tags_idx/, 'the GIN index on tags can serve ?tag=')
  t.comment(text)
})
