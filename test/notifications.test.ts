import { once } from 'node:events'
import t from 'tap'
import { startHarness, waitFor } from './helpers/harness.ts'
import { startReceiver } from './helpers/webhook-receiver.ts'

const ENV = {
  TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1',
  TASKLANE_OUTBOX_INTERVAL_MS: '100',
  TASKLANE_NOTIFY_RETRY_DELAYS: '200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms,200ms',
}

async function addEndpoint (h: Awaited<ReturnType<typeof startHarness>>, body: Record<string, unknown>) {
  const res = await h.app.inject({ method: 'POST', url: '/v1/webhook-endpoints', payload: body })
  if (res.statusCode !== 201) throw new Error(`endpoint create ${res.statusCode}: ${res.body}`)
  return res.json() as { id: string, signingSecret: string }
}

t.test('endpoints: created once with their secret, listed and read without it, deleted; bad input is a 400', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const created = await h.app.inject({ method: 'POST', url: '/v1/webhook-endpoints', payload: { url: 'https://example.com/hook', events: ['task.failed'], types: ['http'] } })
  t.equal(created.statusCode, 201)
  const ep = created.json()
  t.match(ep, { url: 'https://example.com/hook', events: ['task.failed'], types: ['http'], tags: null })
  t.match(ep.signingSecret, /^whsec_/)
  t.equal(created.headers.location, `/v1/webhook-endpoints/${ep.id}`)
  const list = (await h.app.inject({ url: '/v1/webhook-endpoints' })).json()
  t.equal(list.items.length, 1)
  t.notOk('signingSecret' in list.items[0], 'the list never shows the secret')
  const one = await h.app.inject({ url: `/v1/webhook-endpoints/${ep.id}` })
  t.equal(one.statusCode, 200)
  t.notOk('signingSecret' in one.json())
  for (const bad of [{ url: 'ftp://x/', events: ['task.failed'] }, { url: 'https://x/', events: ['task.started'] }, { url: 'https://x/', events: [] },
    { url: 'https://x/' }, { url: 'https://u:p@x/', events: ['task.failed'] }]) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/webhook-endpoints', payload: bad })
    t.equal(res.statusCode, 400, JSON.stringify(bad))
    t.equal(res.headers['content-type'], 'application/problem+json; charset=utf-8')
  }
  t.equal((await h.app.inject({ url: '/v1/webhook-endpoints' })).json().items.length, 1, 'bad input stored nothing')
  t.equal((await h.app.inject({ method: 'DELETE', url: `/v1/webhook-endpoints/${ep.id}` })).statusCode, 204)
  t.equal((await h.app.inject({ url: `/v1/webhook-endpoints/${ep.id}` })).statusCode, 404)
  t.equal((await h.app.inject({ method: 'DELETE', url: `/v1/webhook-endpoints/${ep.id}` })).statusCode, 404)
  t.equal((await h.app.inject({ url: '/v1/webhook-endpoints/nope' })).statusCode, 404)
})

t.test('a matching terminal state is POSTed signed; filters by event and type; each attempt is listed on the task', async (t) => {
  const h = await startHarness(t, { worker: true, env: ENV })
  const secrets: string[] = []
  const rx = await startReceiver(t, () => secrets)
  const completedEcho = await addEndpoint(h, { url: `${rx.url}/a`, events: ['task.completed'], types: ['echo'] })
  const failedAny = await addEndpoint(h, { url: `${rx.url}/b`, events: ['task.failed', 'task.cancelled'] })
  const tagged = await addEndpoint(h, { url: `${rx.url}/c`, events: ['task.completed'], tags: ['billing'] })
  secrets.push(completedEcho.signingSecret, failedAny.signingSecret, tagged.signingSecret)

  const echo = await h.createTask({ type: 'echo', payload: { n: 1 } })
  const billed = await h.createTask({ type: 'echo', payload: {}, tags: ['x', 'billing'] })
  const sleep = await h.createTask({ type: 'sleep', payload: { ms: 1 } })
  const failing = await h.createTask({ type: 'http', payload: { method: 'GET', url: 'http://10.255.255.1/' }, maxAttempts: 1 })
  const later = await h.createTask({ type: 'echo', payload: {}, delayMs: 60_000 })
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${later.id}/cancel` })).statusCode, 202)
  await h.waitForTerminal([echo.id, billed.id, sleep.id, failing.id])
  await waitFor(async () => rx.accepted.size >= 5)
  // Give a stray extra delivery time to show up before counting.
  await new Promise((resolve) => setTimeout(resolve, 500))

  const byTask = (id: string) => [...rx.accepted.values()].filter((r) => (r.json.data as { id: string }).id === id)
  t.equal(rx.all.every((r) => r.verified), true, 'every request carries a valid signature')
  t.equal(rx.accepted.size, 5, 'five owed events, no more: two echo completed, the tagged one again, http failed, cancelled')
  t.same(byTask(billed.id).map((r) => r.json.type), ['task.completed', 'task.completed'], 'the tagged task goes to the type and the tag endpoints')
  t.equal(byTask(echo.id).length, 1, 'an untagged task does not match the tag filter')
  const [e] = byTask(echo.id)
  t.match(e, { json: { type: 'task.completed', data: { id: echo.id, status: 'completed', result: { n: 1 } } } })
  t.match(e!.headers, { 'content-type': 'application/json', 'user-agent': /^Tasklane\// })
  t.match(e!.headers['webhook-timestamp'], /^\d{10}$/)
  t.equal(byTask(sleep.id).length, 0, 'a sleep task matches no endpoint (type filter)')
  t.match(byTask(failing.id)[0], { json: { type: 'task.failed', data: { error: { code: 'FORBIDDEN_ADDRESS' } } } })
  t.match(byTask(later.id)[0], { json: { type: 'task.cancelled' } })

  const deliveries = (await h.app.inject({ url: `/v1/tasks/${echo.id}/deliveries` })).json().items
  t.match(deliveries, [{ endpointId: completedEcho.id, event: 'task.completed', webhookId: e!.id, attempt: 1, status: 200, error: null }])
  t.equal((await h.app.inject({ url: `/v1/tasks/${sleep.id}/deliveries` })).json().items.length, 0)
  t.equal((await h.app.inject({ url: '/v1/tasks/0190b2a0-0000-7000-8000-000000000000/deliveries' })).statusCode, 404)
  t.equal((await h.app.inject({ method: 'DELETE', url: `/v1/tasks/${echo.id}` })).statusCode, 204)
  const n = (await h.sql<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where task_id = ${echo.id}`)[0]!.n
  t.equal(n, 0, 'deleting the task deletes its delivery log')
})

t.test('an endpoint down for a while, then back: every owed event arrives once per webhook-id', async (t) => {
  const h = await startHarness(t, { worker: true, env: ENV })
  let secret = ''
  let down = true
  const rx = await startReceiver(t, () => [secret], (_r, res) => { res.statusCode = down ? 503 : 204; res.end() })
  secret = (await addEndpoint(h, { url: rx.url, events: ['task.completed'] })).signingSecret
  const ids = []
  for (let i = 0; i < 20; i++) ids.push((await h.createTask({ type: 'echo', payload: { i } })).id)
  await h.waitForTerminal(ids)
  await waitFor(async () => rx.all.length >= 40, 20_000)
  t.equal(rx.accepted.size, 0, 'nothing accepted while it was down')
  const triedWhileDown = new Set(rx.all.map((r) => r.id))
  down = false
  await waitFor(async () => rx.accepted.size === 20, 20_000)
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(rx.accepted.size, 20, 'every event arrived')
  t.equal(rx.duplicates(), 0, 'none accepted twice')
  t.same(new Set([...rx.accepted.values()].map((r) => (r.json.data as { id: string }).id)), new Set(ids))
  // Events first tried after the endpoint came back were accepted at once; those tried before
  // it came back must have been accepted later under the webhook-id of their failed tries.
  t.ok(triedWhileDown.size > 0 && [...triedWhileDown].every((id) => rx.accepted.has(id)), 'the same webhook-id on every try')
  const retried = [...triedWhileDown][0]!
  const log = await h.sql<{ status: number | null }[]>`select status from webhook_deliveries where webhook_id = ${retried} order by attempt`
  t.equal(log.at(-1)!.status, 204)
  t.ok(log.slice(0, -1).every((l) => l.status === 503), 'each failed try is recorded')
})

t.test('the worker that owed notifications is SIGKILLed before sending: another worker sends them all', async (t) => {
  const h = await startHarness(t, { env: ENV })
  let secret = ''
  const rx = await startReceiver(t, () => [secret])
  secret = (await addEndpoint(h, { url: rx.url, events: ['task.completed'] })).signingSecret
  // This worker runs tasks but never hands notifications over (its sender and deliveries are off).
  const victim = await h.spawnWorker({ ...ENV, TASKLANE_OUTBOX_INTERVAL_MS: '0', TASKLANE_NOTIFY_CONCURRENCY: '0' })
  const ids = []
  for (let i = 0; i < 30; i++) ids.push((await h.createTask({ type: 'echo', payload: { i } })).id)
  await h.waitForTerminal(ids)
  victim.kill('SIGKILL')
  await once(victim, 'exit')
  const owed = (await h.sql<{ owed: number }[]>`select count(*)::int as owed from notification_outbox`)[0]!.owed
  t.equal(owed, 30, 'each completion wrote its notification with it')
  t.equal(rx.all.length, 0, 'nothing was sent before the kill')
  await h.startWorker()
  await waitFor(async () => rx.accepted.size === 30, 20_000)
  await new Promise((resolve) => setTimeout(resolve, 500))
  t.equal(rx.accepted.size, 30)
  t.equal(rx.all.length, 30, 'each sent once')
  const left = (await h.sql<{ left: number }[]>`select count(*)::int as left from notification_outbox`)[0]!.left
  t.equal(left, 0, 'the outbox is empty once handed over')
})

t.test('while the only endpoint hangs, tasks keep completing', async (t) => {
  const h = await startHarness(t, { worker: true, env: { ...ENV, TASKLANE_NOTIFY_TIMEOUT_MS: '60000' } })
  let secret = ''
  const rx = await startReceiver(t, () => [secret], () => { /* never answers */ })
  secret = (await addEndpoint(h, { url: rx.url, events: ['task.completed'] })).signingSecret
  const created = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks: Array.from({ length: 300 }, (_, i) => ({ type: 'echo', payload: { i } })) } })
  const ids = (created.json().items as { id: string }[]).map((i) => i.id)
  const done = await h.waitForTerminal(ids, 60_000)
  t.equal(done.filter((d) => d.status === 'completed').length, 300, 'all 300 completed')
  await waitFor(async () => rx.all.length > 0, 10_000)
  t.equal(rx.accepted.size, 0, 'while no delivery succeeded')
  const n = (await h.sql<{ n: number }[]>`select count(*)::int as n from webhook_deliveries where status between 200 and 299`)[0]!.n
  t.equal(n, 0)
})
