import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { createDbClient } from '../services/core/db/db-client.ts'
import { createTaskTransitions } from '../services/core/tasks/transitions.ts'
import { createReconciler, RECONCILER_LOCK_KEY } from '../services/worker/reconciler.ts'
import { startHarness, type Harness } from './helpers/harness.ts'
import { deletePrefixKeys, DRILL_ENV } from './helpers/fault-tools.ts'
import { startExecutionReceiver } from './helpers/execution-receiver.ts'
import { testLogger } from './helpers/test-config.ts'

// Passes are run by hand here; the worker's own reconciler stays off.
const ENV = { ...DRILL_ENV, TASKLANE_RECONCILER_INTERVAL_MS: '0', TASKLANE_RECONCILER_MIN_AGE_MS: '10000', TASKLANE_RECONCILER_STALE_RUNNING_MS: '10000' }

function reconcilerOf (t: Test, h: Harness) {
  // Each reconciler holds the lock on a connection of its own, as each worker does.
  const lock = createDbClient(h.config.DATABASE_URL, { max: 1, applicationName: 'tasklane-test:reconciler-lock' })
  t.teardown(() => lock.close())
  return createReconciler({
    sql: h.sql, transitions: transitionsOf(h), lockSql: lock.sql, redis: h.deps.redis, queues: h.deps.queues, config: h.config, registry: new Registry(), log: testLogger(h.config, 'reconciler'),
  })
}

const transitionsOf = (h: Harness) => createTaskTransitions(h.sql, { maxLostAttempts: 3 })
const claim = (h: Harness, taskId: string, workerId: string) =>
  transitionsOf(h).claim({ taskId, workerId, leaseId: crypto.randomUUID() }).then((c) => c?.task)
const age = (h: Harness, id: string) => h.sql`update tasks set updated_at = now() - interval '1 hour' where id = ${id}`

t.test('one reconciler pass at a time across replicas: a pass while another holds the lock does nothing', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const a = reconcilerOf(t, h)
  const b = reconcilerOf(t, h)
  await h.sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(${RECONCILER_LOCK_KEY.toString()}::bigint)`
    t.equal((await a.runOnce()).active, false, 'skipped while another replica is in a pass')
    t.equal((await b.runOnce()).active, false)
  })
  t.equal((await a.runOnce()).active, true, 'runs once the lock is free')
})

t.test('repairs: queued with no job, queued with a finished job, queued with a job in no list, running with a vanished worker; leaves live and fresh work alone', async (t) => {
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: ENV })
  const queue = h.deps.queues.get('http')

  // Queued, its job gone (an enqueue that failed, a flushed Redis).
  const missing = await h.createTask(receiver.task('missing'))
  await queue.remove(missing.id)
  await age(h, missing.id)
  // Queued, its job hash left but in none of BullMQ's lists (keys lost one by one): no worker
  // would ever take it, and adding the id again would be a no-op while the hash is there.
  const orphan = await h.createTask(receiver.task('orphan'))
  await h.deps.redis.multi().zrem(queue.keys.prioritized!, orphan.id).lrem(queue.keys.wait!, 0, orphan.id).zrem(queue.keys.delayed!, orphan.id).exec()
  t.equal(await queue.getJobState(orphan.id), 'unknown', 'the orphan job is in no list')
  await age(h, orphan.id)
  // Queued, but its job already finished (a manual retry whose enqueue failed).
  const finished = await h.createTask(receiver.task('finished'))
  const worker = await h.startWorker(ENV)
  await h.waitForTerminal([finished.id])
  await worker.stop(500)
  await h.sql`update tasks set status = 'queued', finished_at = null where id = ${finished.id}`
  await age(h, finished.id)
  // Running on a worker that is gone: the attempt is open, the job is not in Redis.
  const lost = await h.createTask(receiver.task('lost'))
  await queue.remove(lost.id)
  await claim(h, lost.id, 'gone-worker')
  await age(h, lost.id)
  // Running with a live lock: not touched, whatever its age.
  const live = await h.createTask(receiver.task('live'))
  await claim(h, live.id, 'live-worker')
  await h.deps.redis.set(`${queue.toKey(live.id)}:lock`, 'token', 'PX', 60_000)
  await age(h, live.id)
  // Queued a moment ago with no job yet: its creator may still be enqueueing it.
  const fresh = await h.createTask(receiver.task('fresh'))
  await queue.remove(fresh.id)

  const report = await reconcilerOf(t, h).runOnce()
  t.same(report.repaired, { queued_job_missing: 2, queued_job_finished: 1, running_worker_lost: 1, failed_worker_lost: 0 })
  t.equal((await queue.getJob(fresh.id)), undefined, 'the fresh task is left to its creator')
  const [liveRow] = await h.sql<{ status: string }[]>`select status from tasks where id = ${live.id}`
  t.equal(liveRow!.status, 'running', 'a task whose job is locked by a live worker is left alone')
  t.equal((await reconcilerOf(t, h).runOnce()).repaired.queued_job_missing, 0, 'a second pass finds nothing more to do')

  await h.deps.redis.del(`${queue.toKey(live.id)}:lock`)
  await h.startWorker(ENV)
  const done = await h.waitForTerminal([missing.id, finished.id, lost.id, orphan.id])
  t.same(done.map((d) => d.status), ['completed', 'completed', 'completed', 'completed'])
  t.equal(receiver.executions('orphan').length, 1, 'the orphan ran once, from its new job')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${lost.id}/attempts` })).json().items as { outcome: string, workerId: string }[]
  t.same(attempts.map((a) => [a.outcome, a.workerId === 'gone-worker']), [['lost', true], ['completed', false]], 'the lost attempt stays in the history')
  // Executions, counted where the handler sent them: each repaired task ran once more, and
  // every result is the answer to the task's last execution.
  t.same(['missing', 'finished', 'lost'].map((k) => receiver.executions(k).length), [1, 2, 1],
    'executions: missing 1, finished 2 (before and after its reset), lost 1 (the gone worker never ran it)')
  const results = await h.sql<{ id: string, nonce: string }[]>`
    select id, result -> 'body' ->> 'nonce' as nonce from tasks where id = any(${[missing.id, finished.id, lost.id]}::uuid[])`
  const nonces = new Map(results.map((r) => [r.id, r.nonce]))
  t.same([['missing', missing.id], ['finished', finished.id], ['lost', lost.id]].map(([k, id]) => nonces.get(id!) === receiver.executions(k!).at(-1)?.nonce),
    [true, true, true], 'each result carries the nonce of the task\'s last execution')
})

t.test('a hash-tagged prefix ({...}) for Redis Cluster works end to end, recovery included', async (t) => {
  const prefix = `{tlt_${Date.now().toString(36)}}`
  const receiver = await startExecutionReceiver(t)
  const h = await startHarness(t, { env: { ...ENV, TASKLANE_QUEUE_PREFIX: prefix, TASKLANE_RECONCILER_MIN_AGE_MS: '0' } })
  t.equal(h.config.TASKLANE_QUEUE_PREFIX, prefix)
  const ids = await Promise.all(Array.from({ length: 20 }, (_, i) => h.createTask(receiver.task(`tagged-${i}`)).then((x) => x.id)))
  const keys = await h.deps.redis.keys(`${prefix.replace(/[{}]/g, '\\$&')}:*`)
  t.ok(keys.length > 0 && keys.every((k) => k.startsWith(`${prefix}:`)), 'every key carries the hash tag, so a queue lives in one cluster slot')
  t.ok(await deletePrefixKeys(h.config.REDIS_URL, prefix) > 0, 'the jobs are deleted')
  const report = await reconcilerOf(t, h).runOnce()
  t.equal(report.repaired.queued_job_missing, 20, 're-enqueued under the hash-tagged prefix')
  await h.startWorker(ENV)
  const done = await h.waitForTerminal(ids)
  t.same(done.map((d) => d.status), ids.map(() => 'completed'))
  t.same(ids.map((_, i) => receiver.executions(`tagged-${i}`).length), ids.map(() => 1), 'each re-enqueued task executed once')
})

t.test('exactly-once recorded state under duplicate deliveries and late writes', async (t) => {
  const h = await startHarness(t, { env: ENV })
  const transitions = transitionsOf(h)
  const task = await h.createTask({ type: 'echo', payload: {} })
  await h.deps.queues.get('default').remove(task.id)

  const first = await claim(h, task.id, 'w1')
  const second = await claim(h, task.id, 'w2') // the same job delivered twice
  t.equal(first?.attempts, 1)
  t.equal(second?.attempts, 2)
  t.equal(await transitions.complete(task.id, 1, { result: { by: 'w1' }, durationMs: 1 }), false, 'the superseded attempt cannot record')
  t.equal(await transitions.complete(task.id, 2, { result: { by: 'w2' }, durationMs: 1 }), true)
  t.equal(await transitions.complete(task.id, 2, { result: { by: 'again' }, durationMs: 1 }), false, 'a repeated finish is a no-op')
  t.equal(await transitions.fail(task.id, 2, { error: { message: 'late', code: 'X' }, durationMs: 1 }), false)
  t.equal(await transitions.scheduleRetry(task.id, 2, { error: { message: 'late', code: 'X' }, runAt: new Date(), durationMs: 1 }), false)
  t.equal(await claim(h, task.id, 'w3'), undefined, 'a terminal task never goes back to running')
  t.equal(await transitions.requeueLost(task.id, 2, 0), undefined, 'nor does the reconciler requeue it')
  t.equal(await transitions.release(task.id, 2, 1), false, 'nor does a stopping worker release it')

  const [row] = await h.sql<{ status: string, result: unknown }[]>`select status, result from tasks where id = ${task.id}`
  t.same(row, { status: 'completed', result: { by: 'w2' } })
  const attempts = await h.sql<{ attempt: number, outcome: string }[]>`select attempt, outcome from task_attempts where task_id = ${task.id} order by attempt`
  t.same(attempts.map((a) => [a.attempt, a.outcome]), [[1, 'lost'], [2, 'completed']], 'one terminal attempt')
})
