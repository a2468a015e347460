import t from 'tap'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'

const post = (h: Harness, url: string) => h.app.inject({ method: 'POST', url })
const problem = (res: { statusCode: number, headers: Record<string, unknown>, json: () => any }) =>
  ({ status: res.statusCode, type: String(res.headers['content-type']), body: res.json() })

t.test('cancel: a queued (delayed) task is cancelled at once and its job removed; twice is harmless', async (t) => {
  const h = await startHarness(t)
  const task = await h.createTask({ type: 'echo', payload: {}, delayMs: 60_000 })
  const queue = h.deps.queues.get('default')
  t.ok(await queue.getJob(task.id), 'the delayed job exists')
  const res = await post(h, `/v1/tasks/${task.id}/cancel`)
  t.equal(res.statusCode, 202)
  t.equal(res.json().status, 'cancelled')
  t.ok(res.json().finishedAt)
  t.notOk(await queue.getJob(task.id), 'the job is gone')
  const again = await post(h, `/v1/tasks/${task.id}/cancel`)
  t.equal(again.statusCode, 202, 'cancelling twice is harmless')
  t.equal(again.json().status, 'cancelled')
  t.equal((await h.getTask(task.id)).status, 'cancelled')
})

t.test('cancel: a running task ends cancelled, not failed and not retried; its attempt says cancelled', async (t) => {
  const h = await startHarness(t, { worker: true })
  const task = await h.createTask({ type: 'sleep', payload: { ms: 30_000 }, maxAttempts: 3 })
  await waitFor(async () => (await h.getTask(task.id)).status === 'running')
  const res = await post(h, `/v1/tasks/${task.id}/cancel`)
  t.equal(res.statusCode, 202)
  const [done] = await h.waitForTerminal([task.id], 5_000)
  t.equal(done!.status, 'cancelled')
  t.equal(done!.attempts, 1, 'no retry')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${task.id}/attempts` })).json().items
  t.same(attempts.map((a: { outcome: string }) => a.outcome), ['cancelled'])
  const twice = await post(h, `/v1/tasks/${task.id}/cancel`)
  t.equal(twice.statusCode, 202, 'cancelling a cancelled task again is harmless')
})

t.test('cancel: completed or failed is a 409 problem; an unknown task is 404', async (t) => {
  const h = await startHarness(t, { worker: true })
  const ok = await h.createTask({ type: 'echo', payload: {} })
  const bad = await h.createTask({ type: 'sleep', payload: { ms: 1_000 }, timeoutMs: 10, maxAttempts: 1 })
  const [done, failed] = await h.waitForTerminal([ok.id, bad.id])
  t.equal(done!.status, 'completed')
  t.equal(failed!.status, 'failed')
  for (const id of [ok.id, bad.id]) {
    const p = problem(await post(h, `/v1/tasks/${id}/cancel`))
    t.equal(p.status, 409)
    t.match(p.type, /application\/problem\+json/)
    t.match(p.body, { status: 409, type: 'urn:tasklane:problem:task-conflict' })
  }
  t.equal((await post(h, '/v1/tasks/01a2077c-d81a-7550-bad6-90a87ef6a8fc/cancel')).statusCode, 404)
  t.equal((await post(h, '/v1/tasks/not-a-uuid/cancel')).statusCode, 404)
})

t.test('retry: a failed task is queued again with a fresh attempt budget and runs again', async (t) => {
  const h = await startHarness(t, { worker: true })
  const task = await h.createTask({ type: 'sleep', payload: { ms: 1_000 }, timeoutMs: 10, maxAttempts: 2, backoff: { type: 'fixed', delayMs: 10 } })
  const [failed] = await h.waitForTerminal([task.id])
  t.equal(failed!.status, 'failed')
  t.equal(failed!.attempts, 2)
  const res = await post(h, `/v1/tasks/${task.id}/retry`)
  t.equal(res.statusCode, 202)
  t.match(res.json(), { status: 'queued', attempts: 2, maxAttempts: 4, finishedAt: null })
  const [again] = await h.waitForTerminal([task.id])
  t.equal(again!.status, 'failed', 'it times out again')
  t.equal(again!.attempts, 4, 'two more attempts: a fresh budget')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${task.id}/attempts` })).json().items
  t.same(attempts.map((a: { attempt: number }) => a.attempt), [1, 2, 3, 4], 'the whole history is kept')
})

t.test('retry: a cancelled task runs again to completion; queued, running and completed are 409', async (t) => {
  const h = await startHarness(t)
  const task = await h.createTask({ type: 'echo', payload: { again: true }, delayMs: 60_000 })
  t.equal((await post(h, `/v1/tasks/${task.id}/retry`)).statusCode, 409, 'queued cannot be retried')
  t.equal((await post(h, `/v1/tasks/${task.id}/cancel`)).statusCode, 202)
  const res = await post(h, `/v1/tasks/${task.id}/retry`)
  t.equal(res.statusCode, 202)
  t.equal(res.json().status, 'queued')
  t.ok(await h.deps.queues.get('default').getJob(task.id), 'a new job was enqueued')
  await h.startWorker()
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'completed')
  t.same(done!.result, { again: true })
  t.equal((await post(h, `/v1/tasks/${task.id}/retry`)).statusCode, 409, 'completed cannot be retried')
  const running = await h.createTask({ type: 'sleep', payload: { ms: 30_000 } })
  await waitFor(async () => (await h.getTask(running.id)).status === 'running')
  t.equal((await post(h, `/v1/tasks/${running.id}/retry`)).statusCode, 409, 'running cannot be retried')
  t.equal((await post(h, '/v1/tasks/01a2077c-d81a-7550-bad6-90a87ef6a8fc/retry')).statusCode, 404)
})

t.test('delete: a terminal task goes with its attempts; queued or running is 409; gone is 404', async (t) => {
  const h = await startHarness(t, { worker: true })
  const done = await h.createTask({ type: 'echo', payload: {} })
  await h.waitForTerminal([done.id])
  const running = await h.createTask({ type: 'sleep', payload: { ms: 30_000 } })
  const queued = await h.createTask({ type: 'echo', payload: {}, delayMs: 60_000 })
  await waitFor(async () => (await h.getTask(running.id)).status === 'running')

  for (const id of [running.id, queued.id]) {
    const res = await h.app.inject({ method: 'DELETE', url: `/v1/tasks/${id}` })
    t.equal(res.statusCode, 409)
    t.equal(res.json().status, 409)
  }
  const res = await h.app.inject({ method: 'DELETE', url: `/v1/tasks/${done.id}` })
  t.equal(res.statusCode, 204)
  t.equal(res.body, '')
  t.equal((await h.app.inject({ url: `/v1/tasks/${done.id}` })).statusCode, 404)
  t.equal((await h.app.inject({ url: `/v1/tasks/${done.id}/attempts` })).statusCode, 404)
  const [row] = await h.sql<{ count: number }[]>`select count(*)::int as count from task_attempts where task_id = ${done.id}`
  t.equal(row!.count, 0, 'its attempts are gone')
  t.equal((await h.app.inject({ method: 'DELETE', url: `/v1/tasks/${done.id}` })).statusCode, 404)
})
