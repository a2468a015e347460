import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startHarness, type Harness } from './helpers/harness.ts'
import { DRILL_ENV, faultReport, judge, submitDrillTasks, waitForTerminalCount, type DrillTask } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'
import { startPrivatePostgres } from './helpers/private-postgres.ts'

// Short locks and a fast reconciler: recovery within seconds (the defaults are minutes-safe).
const WORKER_ENV = {
  TASKLANE_QUEUES: 'http:25',
  TASKLANE_LOCK_DURATION_MS: '2000',
  TASKLANE_STALLED_INTERVAL_MS: '1000',
  TASKLANE_RECONCILER_INTERVAL_MS: '300',
  TASKLANE_RECONCILER_MIN_AGE_MS: '1000',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '3000',
}

/**
 * What a careful client does while the API answers 503: the same create again, under the same
 * Idempotency-Key, until it is accepted. Every status seen is kept for the drill to judge.
 */
async function createUntilAccepted (h: Harness, key: string, body: Record<string, unknown>, statuses: number[]): Promise<DrillTask> {
  for (;;) {
    const res = await h.app.inject({ method: 'POST', url: '/v1/tasks', payload: body, headers: { 'idempotency-key': key } })
    statuses.push(res.statusCode)
    if (res.statusCode === 202 || res.statusCode === 200) return { id: res.json().id, key }
    if (res.statusCode !== 503) throw new Error(`create ${key} answered ${res.statusCode}: ${res.body}`)
    await sleep(100)
  }
}

t.test('the Postgres server restarted (pg_ctl restart -m fast) mid-run with creates in flight: nothing lost, each result from a real execution', async (t) => {
  const pg = await startPrivatePostgres(t)
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: DRILL_ENV, postgresUrl: pg.url })
  await h.spawnWorker(WORKER_ENV)
  const before = await submitDrillTasks(h, receiver.tasks('before-', 320, 100, 300))
  await waitForTerminalCount(h.sql, before, 60, 30_000)

  // Creates at an even pace, one after the other, from before the restart until after it.
  const statuses: number[] = []
  const during: DrillTask[] = []
  const creating = (async () => {
    for (const { key, body } of receiver.tasks('during-', 80)) {
      during.push(await createUntilAccepted(h, key, body, statuses))
      await sleep(25)
    }
  })()
  await sleep(300)
  const restartedAt = Date.now()
  await pg.restart()
  t.comment(`pg_ctl restart -m fast took ${Date.now() - restartedAt} ms`)
  await creating

  const tasks = [...before, ...during]
  await waitForTerminalCount(h.sql, tasks, tasks.length, 60_000)
  const report = await faultReport(h.sql, tasks, receiver)
  judge(t, 'postgres restarted', report)
  // No worker was lost, so a lost attempt here would be a claim re-run after an ambiguous commit.
  t.equal(report.lostAttempts, 0, 'no attempt recorded lost: no worker was lost')
  const unavailable = statuses.filter((s) => s === 503).length
  t.comment(`creates during the restart: ${during.length} accepted after ${statuses.length} requests (${unavailable} answered 503)`)
  t.same(statuses.filter((s) => ![200, 202, 503].includes(s)), [], 'every create answered 202, 200 (a replay) or 503, nothing else')
  const [stored] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where idempotency_key like 'during-%'`
  t.equal(stored!.n, during.length, 'each create retried under its Idempotency-Key is stored once')
})
