import t from 'tap'
import { startHarness, waitFor } from './helpers/harness.ts'

t.test('a running sleep task on a worker in another process is cancelled long before its sleep ends', async (t) => {
  const h = await startHarness(t)
  await h.spawnWorker()
  const task = await h.createTask({ type: 'sleep', payload: { ms: 60_000 }, maxAttempts: 3 })
  await waitFor(async () => (await h.getTask(task.id)).status === 'running', 15_000)

  const res = await h.app.inject({ method: 'POST', url: `/v1/tasks/${task.id}/cancel` })
  t.equal(res.statusCode, 202)
  t.equal(res.json().status, 'running', 'the answer comes before the worker has stopped')
  // How fast is for `make bench`; here: the attempt ends cancelled instead of sleeping its minute out.
  const [done] = await h.waitForTerminal([task.id], 30_000)
  t.equal(done!.status, 'cancelled', 'cancelled, not failed')
  t.equal(done!.attempts, 1, 'not retried')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${task.id}/attempts` })).json().items
  t.match(attempts, [{ attempt: 1, outcome: 'cancelled' }])
  t.ok(attempts[0].durationMs < 30_000, `the handler stopped early (after ${attempts[0].durationMs} ms of its 60,000)`)
})
