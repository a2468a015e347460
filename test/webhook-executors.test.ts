import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { AddressInfo } from 'node:net'
import type { ServerResponse } from 'node:http'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'
import { startReceiver, type Received } from './helpers/webhook-receiver.ts'

const run = promisify(execFile)
const CHILD = fileURLToPath(new URL('./fixtures/callback-child.ts', import.meta.url))
const ENV = { TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' }
const FAST = { backoff: { type: 'fixed', delayMs: 50 } }

type Answer = (r: Received, res: ServerResponse) => void

/** A receiver that verifies with the public Standard Webhooks library and answers by the payload's `mode`. */
async function receiver (t: { teardown: (fn: () => unknown) => void }, answers: Record<string, Answer>) {
  const secrets: string[] = []
  const rx = await startReceiver(t, () => secrets, (r, res) => {
    const mode = ((r.json.task as { payload: { mode: string } }).payload.mode)
    const answer = answers[mode]
    if (answer) answer(r, res)
    else res.writeHead(500).end()
  })
  const forTask = (id: string) => rx.all.filter((r) => (r.json.task as { id: string }).id === id)
  return { ...rx, secrets, forTask }
}

async function registerWebhook (h: Harness, name: string, executor: Record<string, unknown>, extra: Record<string, unknown> = {}) {
  const res = await h.app.inject({ method: 'PUT', url: `/v1/task-types/${name}`, payload: { executor: { kind: 'webhook', ...executor }, ...extra } })
  if (res.statusCode !== 201) throw new Error(`register ${res.statusCode}: ${res.body}`)
  return res.json() as { signingSecret: string }
}

/** The API listening on a port (callbacks come over real HTTP) and a worker that offers it as TASKLANE_PUBLIC_URL. */
async function withCallbacks (t: Parameters<typeof startHarness>[0]) {
  const h = await startHarness(t, { env: ENV })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const publicUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
  await h.startWorker({ TASKLANE_PUBLIC_URL: publicUrl })
  return { h, publicUrl }
}

const json = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) =>
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body))

t.test('signed POSTs: 2xx completes with the body, 5xx is retried, 4xx fails at once, timeouts and bad results are coded', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const worker = await h.startWorker()
  let flaky = 0
  const rx = await receiver(t, {
    sync: (r, res) => json(res, 200, { echoed: (r.json.task as { payload: unknown }).payload }),
    empty: (_r, res) => res.writeHead(204).end(),
    flaky: (_r, res) => (++flaky === 1 ? res.writeHead(503).end('busy') : json(res, 201, { ok: true })),
    rejected: (_r, res) => res.writeHead(422).end('no such customer'),
    slow: (_r, res) => { setTimeout(() => { if (!res.destroyed) json(res, 200, {}) }, 2_000) },
    invalid: (_r, res) => json(res, 200, { wrong: 1 }),
    limited: (_r, res) => json(res, 429, {}, { 'retry-after': '1' }),
  })
  const type = await registerWebhook(h, 'charge', { url: `${rx.url}/hook`, timeoutMs: 300 }, { resultSchema: { type: ['object', 'null'], properties: { wrong: false } } })
  rx.secrets.push(type.signingSecret)

  const sync = await h.createTask({ type: 'charge', payload: { mode: 'sync', amount: 3 }, tags: ['x'] })
  const empty = await h.createTask({ type: 'charge', payload: { mode: 'empty' } })
  const flakyTask = await h.createTask({ type: 'charge', payload: { mode: 'flaky' }, ...FAST })
  const rejected = await h.createTask({ type: 'charge', payload: { mode: 'rejected' }, ...FAST })
  const slow = await h.createTask({ type: 'charge', payload: { mode: 'slow' }, maxAttempts: 1 })
  const invalid = await h.createTask({ type: 'charge', payload: { mode: 'invalid' }, ...FAST })
  const limited = await h.createTask({ type: 'charge', payload: { mode: 'limited' }, maxAttempts: 2, ...FAST })
  const done = await h.waitForTerminal([sync.id, empty.id, flakyTask.id, rejected.id, slow.id, invalid.id, limited.id], 30_000)
  const [s, e, f, rej, sl, inv, lim] = done

  t.match(s, { status: 'completed', result: { echoed: { mode: 'sync', amount: 3 } }, attempts: 1 })
  t.match(e, { status: 'completed', result: null }, 'no body: completed with a null result')
  t.match(f, { status: 'completed', result: { ok: true }, attempts: 2 }, '503 then 201: retried, then completed')
  t.match(rej, { status: 'failed', attempts: 1, error: { code: 'WEBHOOK_REJECTED', message: /422: no such customer/ } })
  t.match(sl, { status: 'failed', error: { code: 'TIMEOUT' } }, 'slower than the executor timeoutMs')
  t.match(inv, { status: 'failed', attempts: 1, error: { code: 'RESULT_INVALID' } }, 'a result against the resultSchema fails, not retried')
  t.match(lim, { status: 'failed', attempts: 2, error: { code: 'WEBHOOK_RETRYABLE_STATUS' } })

  // Counted at the receiver: one request per attempt, each signed and verified independently.
  t.equal(rx.all.every((r) => r.verified), true, 'every request verifies with the standardwebhooks library')
  t.same([sync, empty, flakyTask, rejected, slow, invalid, limited].map((x) => rx.forTask(x.id).length), [1, 1, 2, 1, 1, 1, 2])
  const [first] = rx.forTask(sync.id)
  t.match(first!.headers, { 'webhook-id': `${sync.id}.1`, 'idempotency-key': sync.id, 'user-agent': /^Tasklane\//, 'content-type': 'application/json' })
  t.match(first!.headers['webhook-signature'], /^v1,[A-Za-z0-9+/=]+$/, 'one signature outside a rotation')
  t.match(first!.json, { task: { id: sync.id, type: 'charge', attempt: 1, maxAttempts: 3, payload: { mode: 'sync', amount: 3 } }, callback: null })
  t.notOk('dependencies' in (first!.json.task as object), 'no dependencies, no field')
  const deadline = Date.parse((first!.json.task as { deadline: string }).deadline)
  t.ok(deadline > Date.parse(String(s!.createdAt)), 'the deadline is after the claim')
  t.same(rx.forTask(flakyTask.id).map((r) => r.headers['webhook-id']), [`${flakyTask.id}.1`, `${flakyTask.id}.2`], 'a webhook-id per attempt')

  // Retry-After (1 s) is longer than the task's 50 ms backoff: the second attempt waited for it.
  const attempts = (await h.app.inject({ url: `/v1/tasks/${limited.id}/attempts` })).json().items
  t.ok(Date.parse(attempts[1].startedAt) - Date.parse(attempts[0].finishedAt) >= 900, 'the retry honoured Retry-After')
  const metrics = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text()
  const count = (outcome: string) => Number(new RegExp(`tasklane_webhook_requests_total\\{kind="executor",outcome="${outcome}"[^}]*\\} (\\d+)`).exec(metrics)?.[1])
  t.same(['success', 'retryable_status', 'rejected', 'timeout', 'accepted'].map(count), [4, 3, 1, 1, 0], 'requests counted by outcome')
})

t.test('202 leaves the attempt open: callbacks from another process complete it; late, unknown and malformed tokens', async (t) => {
  const { h, publicUrl } = await withCallbacks(t)
  const rx = await receiver(t, {
    later: (_r, res) => res.writeHead(202).end(),
  })
  const type = await registerWebhook(h, 'report', { url: `${rx.url}/hook` }, { resultSchema: { type: 'object', required: ['done'] } })
  rx.secrets.push(type.signingSecret)

  const task = await h.createTask({ type: 'report', payload: { mode: 'later' }, timeoutMs: 60_000 })
  const [request] = await waitFor(async () => rx.forTask(task.id).length > 0 && rx.forTask(task.id))
  const callback = request!.json.callback as { url: string, token: string }
  t.equal(callback.url, `${publicUrl}/v1/callbacks/${callback.token}`)
  const tokenHash = (await h.sql<{ hash: string }[]>`select callback_token_hash as hash from task_leases where task_id = ${task.id}`)[0]!.hash
  t.notOk(tokenHash.includes(callback.token), 'only a hash of the token is stored')
  t.equal((await h.getTask(task.id)).status, 'running', 'the attempt stays open after the 202')

  const { stdout } = await run(process.execPath, [CHILD, callback.url])
  const calls = stdout.trim().split('\n').map((line) => JSON.parse(line) as { path: string, status: number, body: Record<string, unknown> })
  t.match(calls, [
    { path: 'progress', status: 200, body: { cancelRequested: false } },
    { path: 'heartbeat', status: 200, body: { cancelRequested: false } },
    { path: 'complete', status: 200, body: { id: task.id, status: 'completed' } },
  ])
  t.match(await h.getTask(task.id), { status: 'completed', result: { done: true, by: 'child' }, progress: 50, attempts: 1 })
  t.equal(rx.forTask(task.id).length, 1, 'the receiver was called once')

  const again = await h.app.inject({ method: 'POST', url: `/v1/callbacks/${callback.token}/complete`, payload: { result: { done: false } } })
  t.equal(again.statusCode, 409, 'a callback after the attempt ended')
  t.equal(again.json().code, 'ATTEMPT_ENDED')
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/callbacks/${callback.token}/heartbeat` })).statusCode, 409)
  t.match(await h.getTask(task.id), { result: { done: true } }, 'the late callback changed nothing')
  const unknown = await h.app.inject({ method: 'POST', url: `/v1/callbacks/${'A'.repeat(43)}/complete`, payload: {} })
  t.equal(unknown.statusCode, 404)
  t.equal(unknown.json().code, 'CALLBACK_NOT_FOUND')
  const malformed = await h.app.inject({ method: 'POST', url: '/v1/callbacks/not-a-token/fail', payload: { error: { message: 'x' } } })
  t.equal(malformed.statusCode, 401)
  t.equal(malformed.json().code, 'UNAUTHENTICATED')
})

t.test('a 202 attempt: a callback fail retries it, the deadline times it out, a cancel ends it', async (t) => {
  const { h, publicUrl } = await withCallbacks(t)
  const rx = await receiver(t, {
    later: (_r, res) => res.writeHead(202).end(),
    retry: (r, res) => ((r.json.task as { attempt: number }).attempt === 1 ? res.writeHead(202).end() : json(res, 200, { second: true })),
  })
  rx.secrets.push((await registerWebhook(h, 'job', { url: `${rx.url}/hook` })).signingSecret)

  const retried = await h.createTask({ type: 'job', payload: { mode: 'retry' }, ...FAST })
  const silent = await h.createTask({ type: 'job', payload: { mode: 'later' }, timeoutMs: 1_500, maxAttempts: 1 })
  const cancelled = await h.createTask({ type: 'job', payload: { mode: 'later' }, timeoutMs: 60_000 })
  const [first] = await waitFor(async () => rx.forTask(retried.id).length > 0 && rx.forTask(retried.id))
  const { stdout } = await run(process.execPath, [CHILD, (first!.json.callback as { url: string }).url], { env: { ...process.env, CALLBACK_ACTION: 'fail' } })
  t.match(stdout, /"path":"fail","status":200/)

  await waitFor(async () => rx.forTask(cancelled.id).length > 0)
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/tasks/${cancelled.id}/cancel` })).statusCode, 202)
  const cancelToken = (rx.forTask(cancelled.id)[0]!.json.callback as { token: string }).token
  const heartbeat = await h.app.inject({ method: 'POST', url: `/v1/callbacks/${cancelToken}/heartbeat` })
  t.same(heartbeat.json(), { cancelRequested: true }, 'a cancelled attempt\'s heartbeat says so')
  t.equal((await h.app.inject({ method: 'POST', url: `/v1/callbacks/${cancelToken}/complete`, payload: {} })).statusCode, 409)

  const [r, s, c] = await h.waitForTerminal([retried.id, silent.id, cancelled.id], 20_000)
  t.match(r, { status: 'completed', attempts: 2, result: { second: true } }, 'the callback fail was retried with a new request')
  t.same(rx.forTask(retried.id).map((x) => (x.json.task as { attempt: number }).attempt), [1, 2])
  t.match(s, { status: 'failed', error: { code: 'TIMEOUT' } }, 'no callback before the deadline: TIMEOUT')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${silent.id}/attempts` })).json().items
  t.match(attempts, [{ attempt: 1, outcome: 'timed_out' }])
  t.equal(rx.forTask(silent.id).length, 1)
  const late = await h.app.inject({ method: 'POST', url: `/v1/callbacks/${(rx.forTask(silent.id)[0]!.json.callback as { token: string }).token}/complete`, payload: {} })
  t.equal(late.statusCode, 409, 'a callback after the deadline')
  t.match(c, { status: 'cancelled' })
  t.equal(rx.forTask(cancelled.id).length, 1)
})

t.test('rotation sends both signatures; dependencies ride in the body; a refused address fails at once', async (t) => {
  const h = await startHarness(t, { env: ENV, worker: true })
  const rx = await receiver(t, { ok: (_r, res) => json(res, 200, { ok: 1 }) })
  const old = (await registerWebhook(h, 'sync', { url: `${rx.url}/hook` })).signingSecret
  rx.secrets.push(old)
  const rotated = await h.app.inject({ method: 'POST', url: '/v1/task-types/sync/rotate-secret' })
  t.equal(rotated.statusCode, 200)
  const fresh = rotated.json().signingSecret as string
  rx.secrets.push(fresh)
  const [stored] = await h.sql<{ current: string, previous: string }[]>`
    select signing_secret as current, previous_signing_secret as previous from task_types where name = 'sync'`
  t.notOk(stored!.current.includes(fresh.slice(6)) || stored!.previous.includes(old.slice(6)), 'both secrets are stored sealed, not as issued')

  const dep = await h.createTask({ type: 'echo', payload: { n: 7 } })
  await h.waitForTerminal([dep.id])
  const task = await h.createTask({ type: 'sync', payload: { mode: 'ok' }, dependsOn: [dep.id] })
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'completed')
  const [request] = rx.forTask(task.id)
  const signatures = String(request!.headers['webhook-signature']).split(' ')
  t.equal(signatures.length, 2, 'two signatures during the rotation')
  for (const [name, secret] of [['old', old], ['new', fresh]] as const) {
    t.doesNotThrow(() => new Webhook(secret).verify(request!.body, request!.headers as Record<string, string>), `a receiver holding only the ${name} secret accepts it`)
  }
  t.same((request!.json.task as { dependencies: unknown }).dependencies, { [dep.id]: { type: 'echo', status: 'completed', result: { n: 7 } } })

  await registerWebhook(h, 'private', { url: 'http://10.0.0.1/hook' })
  const refused = await h.createTask({ type: 'private', payload: {} })
  const [r] = await h.waitForTerminal([refused.id])
  t.match(r, { status: 'failed', attempts: 1, error: { code: 'FORBIDDEN_ADDRESS' } })
})
