import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { startHarness, type Harness } from './helpers/harness.ts'
import { DRILL_ENV, faultReport, judge, submitDrillTasks, waitForTerminalCount, type DrillTask } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'
import { startPrivatePostgres } from './helpers/private-postgres.ts'

// A fast reconciler: a create whose enqueue the restart cut is dispatched within seconds. The
// lock keeps its default length: no worker dies here, and a 2 s lock expires on a machine so
// starved of CPU that the worker misses renewing it, which hands a running job to a second
// delivery (a lost attempt, run twice) for a reason that has nothing to do with Postgres.
const WORKER_ENV = {
  TASKLANE_QUEUES: 'http:25',
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

/** Tasks with more attempts recorded lost than BullMQ's stalled check took their job back (its `stc`). */
async function lostAttemptsBeyondStalls (h: Harness, tasks: DrillTask[]): Promise<{ id: string, lost: number, stalled: number }[]> {
  const rows = await h.sql<{ id: string, lost: number }[]>`
    select task_id as id, count(*)::int as lost from task_attempts
    where task_id = any(${tasks.map((x) => x.id)}::uuid[]) and outcome = 'lost' group by task_id`
  const beyond: { id: string, lost: number, stalled: number }[] = []
  for (const { id, lost } of rows) {
    const stalled = Number(await h.deps.redis.hget(`${h.config.TASKLANE_QUEUE_PREFIX}:http:${id}`, 'stc') ?? 0)
    if (lost > stalled) beyond.push({ id, lost, stalled })
  }
  return beyond
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
  // No worker was lost. A lost attempt has one legitimate cause left: BullMQ's stalled check took
  // the job back because its lock expired all the same (the job's stalled counter says so). Any
  // other is a claim run again under a new lease after the first went unanswered: an attempt
  // recorded lost that no worker lost.
  const unexplained = await lostAttemptsBeyondStalls(h, tasks)
  t.same(unexplained, [], 'no attempt recorded lost beyond the deliveries the stalled check took back: no worker was lost')
  const unavailable = statuses.filter((s) => s === 503).length
  t.comment(`creates during the restart: ${during.length} accepted after ${statuses.length} requests (${unavailable} answered 503)`)
  t.same(statuses.filter((s) => ![200, 202, 503].includes(s)), [], 'every create answered 202, 200 (a replay) or 503, nothing else')
  const [stored] = await h.sql<{ n: number }[]>`select count(*)::int as n from tasks where idempotency_key like 'during-%'`
  t.equal(stored!.n, during.length, 'each create retried under its Idempotency-Key is stored once')
})
