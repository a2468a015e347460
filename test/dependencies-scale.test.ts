import t, { type Test } from 'tap'
import { createDependentInsert } from '../services/core/dependencies/dependent-insert.ts'
import type { NewTaskRow } from '../services/core/db/schema.ts'
import { newTaskId } from '../services/core/ids.ts'
import { signalAndWait } from './helpers/fault-tools.ts'
import { startHarness, waitFor, type Harness } from './helpers/harness.ts'

// Big graphs run by a real worker process, measured: wall time, and how many edge rows and
// task row updates Postgres did per task (from its table statistics, read once the worker has
// exited and flushed them). Unblocking costs one counter decrement per edge, so both numbers
// per task stay flat as the graph grows; a dependent that recounted its dependencies on each
// finish would read N^2/2 edges for a fan-in of N (500,000 for N = 1,000). Printed, not
// asserted on time (the machine is shared); what is asserted is that everything ran once.

const WORKER_ENV = { TASKLANE_QUEUES: 'default:20', TASKLANE_RECONCILER_INTERVAL_MS: '0' }

type Stats = { edgeReads: number, taskUpdates: number }

async function tableStats (h: Harness): Promise<Stats> {
  await h.sql`select pg_stat_clear_snapshot()`
  const rows = await h.sql<{ relname: string, reads: number, updates: number }[]>`
    select relname, (coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0))::int as reads, n_tup_upd::int as updates
    from pg_stat_user_tables where relname in ('task_dependencies', 'tasks')`
  const of = (name: string) => rows.find((r) => r.relname === name)!
  return { edgeReads: of('task_dependencies').reads, taskUpdates: of('tasks').updates }
}

async function batch (h: Harness, tasks: unknown[]): Promise<string[]> {
  const res = await h.app.inject({ method: 'POST', url: '/v1/tasks/batch', payload: { tasks } })
  if (res.statusCode !== 202) throw new Error(`batch failed ${res.statusCode}: ${res.body}`)
  return (res.json().items as { id: string }[]).map((x) => x.id)
}

/** Runs what `submit` creates with one worker process and reports the figures. */
async function measure (t: Test, name: string, submit: (h: Harness) => Promise<string[]>) {
  const h = await startHarness(t)
  const worker = await h.spawnWorker(WORKER_ENV)
  const before = await tableStats(h)
  const ids = await submit(h)
  const terminal = async () => (await h.sql<{ n: number }[]>`
    select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status in ('completed', 'failed', 'cancelled')`)[0]!.n
  await waitFor(async () => (await terminal()) === ids.length, 600_000, 200)
  const finished = await terminal()
  // From the first task due to the last one finished, as Postgres recorded them.
  const [span] = await h.sql<{ seconds: number }[]>`
    select extract(epoch from max(finished_at) - min(run_at))::float8 as seconds from tasks where id = any(${ids}::uuid[])`
  const seconds = span!.seconds
  await signalAndWait(worker, 'SIGTERM') // its backends flush their statistics as they exit
  const after = await tableStats(h)
  const [counts] = await h.sql<{ completed: number, attempts: number }[]>`
    select count(*) filter (where status = 'completed')::int as completed,
           (select count(*)::int from task_attempts where task_id = any(${ids}::uuid[])) as attempts
    from tasks where id = any(${ids}::uuid[])`
  t.equal(finished, ids.length, `${name}: every task finished`)
  t.same(counts, { completed: ids.length, attempts: ids.length }, `${name}: every task completed after one attempt`)
  const n = ids.length
  const edgeReads = after.edgeReads - before.edgeReads
  const taskUpdates = after.taskUpdates - before.taskUpdates
  t.comment(`${name}: ${n} tasks in ${seconds.toFixed(1)} s (${(n / seconds).toFixed(0)} tasks/s); ` +
    `edge rows read ${edgeReads} (${(edgeReads / n).toFixed(2)} per task), task row updates ${taskUpdates} (${(taskUpdates / n).toFixed(2)} per task)`)
}

const echo = (name: string, extra: Record<string, unknown> = {}) => ({ type: 'echo', payload: { name }, ...extra })

t.test('a chain of 1,000', (t) => measure(t, 'chain of 1000', (h) =>
  batch(h, Array.from({ length: 1_000 }, (_, i) => echo(`step ${i}`, i === 0 ? {} : { dependsOn: [`#${i - 1}`] })))))

t.test('a fan-in of 900 through the API: 900 tasks into 9 (100 each, the limit per task) into 1', (t) => measure(t, 'fan-in 900 -> 9 -> 1', (h) =>
  batch(h, [
    ...Array.from({ length: 900 }, (_, i) => echo(`leaf ${i}`)),
    ...Array.from({ length: 9 }, (_, m) => echo(`merge ${m}`, { dependsOn: Array.from({ length: 100 }, (_, i) => `#${m * 100 + i}`) })),
    echo('sink', { dependsOn: Array.from({ length: 9 }, (_, m) => `#${900 + m}`) }),
  ])))

{
  // One task waiting for 1,000 others directly: past the API's limit of 100, stored through
  // the same insert the API uses, to show the storage side has no quadratic step either.
  const n = 1_000
  t.test(`a fan-in of ${n} into one task`, (t) => measure(t, `fan-in ${n} -> 1`, async (h) => {
    const leaves = await batch(h, Array.from({ length: n }, (_, i) => echo(`leaf ${i}`, { delayMs: 10_000 })))
    const [leaf] = await h.sql<NewTaskRow[]>`select tenant, queue, priority, max_attempts as "maxAttempts", backoff, timeout_ms as "timeoutMs" from tasks where id = ${leaves[0]!}`
    // Its runAt moves to the time it is unblocked, so the span measured starts when the leaves are due.
    const now = new Date()
    const sink: NewTaskRow = { ...leaf!, id: newTaskId(), type: 'echo', status: 'queued', payload: { name: 'sink' }, runAt: now, createdAt: now, updatedAt: now }
    const stored = await createDependentInsert(h.sql).store(leaf!.tenant!, [sink], [leaves.map((id) => ({ kind: 'task' as const, id }))], () => '/dependsOn')
    if (stored?.rows[0]?.blockedCount !== n) throw new Error('the sink does not wait for every leaf')
    return [...leaves, sink.id!]
  }))
}
