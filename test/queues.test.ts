import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import { startHarness } from './helpers/harness.ts'

t.test('GET /v1/queues lists every queue with its counts; pause holds dispatch, resume lets it go', async (t) => {
  const h = await startHarness(t, { worker: true })
  const list = await h.app.inject({ url: '/v1/queues' })
  t.equal(list.statusCode, 200)
  const items = list.json().items
  t.same(items.map((q: { name: string }) => q.name), ['default', 'http'])
  t.match(items[0], {
    name: 'default', paused: false, concurrency: 20, workers: Number,
    counts: { waiting: 0, prioritized: 0, delayed: 0, active: 0, completed: Number, failed: Number },
  })

  const paused = await h.app.inject({ method: 'POST', url: '/v1/queues/default/pause' })
  t.equal(paused.statusCode, 200)
  t.match(paused.json(), { name: 'default', paused: true })
  const task = await h.createTask({ type: 'echo', payload: {} })
  await sleep(500)
  t.equal((await h.getTask(task.id)).status, 'queued', 'a paused queue dispatches nothing')
  const held = (await h.app.inject({ url: '/v1/queues' })).json().items[0]
  t.match(held, { paused: true })
  t.equal(held.counts.waiting + held.counts.prioritized, 1, 'the job waits')

  const resumed = await h.app.inject({ method: 'POST', url: '/v1/queues/default/resume' })
  t.equal(resumed.statusCode, 200)
  t.equal(resumed.json().paused, false)
  const [done] = await h.waitForTerminal([task.id])
  t.equal(done!.status, 'completed')

  const unknown = await h.app.inject({ method: 'POST', url: '/v1/queues/nope/pause' })
  t.equal(unknown.statusCode, 404)
  t.match(unknown.headers['content-type'], /application\/problem\+json/)
  t.equal((await h.app.inject({ method: 'GET', url: '/v1/queues/default/pause' })).statusCode, 405)
})

t.test('GET /v1/stats counts tasks by status and type from Postgres, with the queue counts', async (t) => {
  const h = await startHarness(t, { worker: true })
  const ok = await h.createTask({ type: 'echo', payload: {} })
  const bad = await h.createTask({ type: 'sleep', payload: { ms: 1_000 }, timeoutMs: 10, maxAttempts: 1 })
  await h.waitForTerminal([ok.id, bad.id])
  await h.createTask({ type: 'echo', payload: {}, delayMs: 60_000 })
  const res = await h.app.inject({ url: '/v1/stats' })
  t.equal(res.statusCode, 200)
  const body = res.json()
  t.match(body.tasks, {
    total: 3,
    byStatus: { queued: 1, running: 0, completed: 1, failed: 1, cancelled: 0 },
    byType: { echo: { queued: 1, completed: 1 }, sleep: { failed: 1 } },
  })
  t.same(body.queues.map((q: { name: string }) => q.name), ['default', 'http'])
  t.equal(body.queues[0].counts.delayed, 1, 'the delayed job')
})
