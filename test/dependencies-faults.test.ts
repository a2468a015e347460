import { createServer } from 'node:http'
import { once } from 'node:events'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import { deletePrefixKeys, signalAndWait } from './helpers/fault-tools.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'

// Faults around the moment a dependency ends: the process that ends it dies right after its
// commit, or Redis loses every key while dependents wait. Dependents are http tasks to a
// receiver of the test's own, which counts how often each really ran.

const WORKER_ENV = {
  TASKLANE_QUEUES: 'default:10,http:10',
  TASKLANE_LOCK_DURATION_MS: '2000',
  TASKLANE_STALLED_INTERVAL_MS: '1000',
  TASKLANE_RECONCILER_INTERVAL_MS: '300',
  TASKLANE_RECONCILER_MIN_AGE_MS: '500',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '3000',
}

async function startReceiver (t: { teardown: (fn: () => unknown) => void }) {
  const hits = new Map<string, number>()
  const server = createServer((req, res) => {
    hits.set(req.url ?? '/', (hits.get(req.url ?? '/') ?? 0) + 1)
    res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())))
  const { port } = server.address() as { port: number }
  return {
    call: (path: string) => ({ type: 'http', payload: { method: 'POST', url: `http://127.0.0.1:${port}${path}` }, maxAttempts: 1 }),
    hits: (path: string) => hits.get(path) ?? 0,
  }
}

async function batch (h: Harness, tasks: unknown[]): Promise<{ id: string }[]> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks } })
  if (res.statusCode !== 202) throw new Error(`batch failed ${res.statusCode}: ${res.body}`)
  return res.json().items
}

t.test('the worker that completes the last dependency is SIGKILLed right after its commit: the dependent still runs, once', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })
  const receiver = await startReceiver(t)
  // In this test's own database: the commit of the transaction that makes a dependent ready
  // takes 3 s (a deferred trigger runs at commit time). The worker is killed meanwhile; the
  // server finishes the commit without it, so the worker never learns it and never enqueues.
  await h.sql.unsafe(`
    create function slow_commit() returns trigger language plpgsql as $$ begin perform pg_sleep(3); return null; end $$;
    create constraint trigger slow_unblock after update on tasks deferrable initially deferred for each row
      when (old.blocked_count > 0 and new.blocked_count = 0) execute function slow_commit();`)
  const victim = await h.spawnWorker({ ...WORKER_ENV, TASKLANE_RECONCILER_INTERVAL_MS: '0' })
  const [first, last, dependent] = await batch(h, [
    receiver.call('/first'),
    { ...receiver.call('/last'), delayMs: 300 },
    { ...receiver.call('/dependent'), dependsOn: ['#0', '#1'] },
  ])

  const [sleeping] = await waitFor(async () => {
    const rows = await h.sql<{ pid: number }[]>`select pid from pg_stat_activity where datname = current_database() and wait_event = 'PgSleep'`
    return rows.length > 0 && rows
  }, 20_000)
  t.ok(sleeping, 'the unblocking transaction is committing')
  const exit = await signalAndWait(victim, 'SIGKILL')
  t.equal(exit.signal, 'SIGKILL')
  await waitFor(async () => {
    const [row] = await h.sql<{ blocked: number }[]>`select blocked_count as blocked from tasks where id = ${dependent!.id}`
    return row!.blocked === 0
  }, 10_000)
  t.notOk(await h.deps.queues.get('http').getJob(dependent!.id), 'the commit went through, but the killed worker never enqueued the dependent')
  await h.sql.unsafe('drop trigger slow_unblock on tasks')

  await h.spawnWorker(WORKER_ENV)
  const done = await h.waitForTerminal([first!.id, last!.id, dependent!.id], 30_000)
  t.same(done.map((x) => x.status), ['completed', 'completed', 'completed'])
  await sleep(1_500) // a second run, if there were one, would arrive by now
  t.same(['/first', '/last', '/dependent'].map(receiver.hits), [1, 1, 1], 'every task ran exactly once')
  const [repaired] = await h.sql<{ n: number }[]>`select count(*)::int as n from task_attempts where task_id = ${dependent!.id}`
  t.equal(repaired!.n, 1, 'the dependent has one attempt')
})

t.test('every Redis key of the prefix deleted while dependents wait: they run when their dependencies complete', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })
  const receiver = await startReceiver(t)
  await h.spawnWorker(WORKER_ENV)
  const tasks = await batch(h, [
    { ...receiver.call('/a'), delayMs: 1_000 },
    { ...receiver.call('/b'), dependsOn: ['#0'] },
    { ...receiver.call('/c'), dependsOn: ['#1'] },
    { ...receiver.call('/d'), dependsOn: ['#0', '#2'] },
  ])
  const deleted = await deletePrefixKeys(h.config.REDIS_URL, h.config.TASKLANE_QUEUE_PREFIX)
  t.ok(deleted > 0, `deleted ${deleted} keys, the delayed job of the first task among them`)
  t.notOk(await h.deps.queues.get('http').getJob(tasks[0]!.id), 'the first task has no job any more')
  const done = await h.waitForTerminal(tasks.map((x) => x.id), 30_000)
  t.same(done.map((x) => x.status), ['completed', 'completed', 'completed', 'completed'])
  await sleep(1_000)
  t.same(['/a', '/b', '/c', '/d'].map(receiver.hits), [1, 1, 1, 1], 'each ran exactly once')
})
