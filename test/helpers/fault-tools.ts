import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'
import type { Test } from 'tap'
import type { Harness } from './harness.ts'
import type { ExecutionReceiver } from './execution-receiver.ts'
import { freePort, startPrivateRedis } from './fault-services.ts'

type Teardown = { teardown: (fn: () => unknown) => void }

export { deletePrefixKeys } from './services.ts'
// One private redis-server and one free-port helper for every drill.
export { freePort, startPrivateRedis }

/**
 * A TCP relay in front of Postgres that can cut every connection and refuse new ones, the way
 * a Postgres that went down looks to a client, without touching the shared server.
 */
export async function startPostgresRelay (t: Teardown, databaseUrl: string) {
  const target = new URL(databaseUrl)
  const sockets = new Set<Socket>()
  const clients = new Set<Socket>()
  let server: Server | undefined
  const port = await freePort()

  async function up (): Promise<void> {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}) }
      clients.add(client)
      client.on('close', () => clients.delete(client))
      client.pipe(upstream).pipe(client)
    })
    server.listen(port, '127.0.0.1')
    await once(server, 'listening')
  }

  async function down (): Promise<void> {
    const closed = server ? new Promise<void>((resolve) => server!.close(() => resolve())) : Promise.resolve()
    for (const s of sockets) s.destroy()
    await closed
    server = undefined
  }

  /**
   * Resets every open connection (a TCP RST to the client, which reads it as ECONNRESET, as it
   * does when it writes to a backend that was terminated) and keeps accepting new ones.
   */
  function reset (): void {
    for (const s of clients) s.resetAndDestroy()
    for (const s of sockets) if (!clients.has(s)) s.destroy()
  }

  await up()
  t.teardown(down)
  const url = new URL(databaseUrl)
  url.host = `127.0.0.1:${port}`
  return { url: url.toString(), up, down, reset }
}

/** Creates tasks through the API, `parallel` requests at a time; every one must be accepted. */
export async function submitTasks (h: Harness, bodies: Record<string, unknown>[], parallel = 25): Promise<string[]> {
  const ids: string[] = new Array(bodies.length)
  let next = 0
  async function lane (): Promise<void> {
    while (next < bodies.length) {
      const i = next++
      ids[i] = (await h.createTask(bodies[i]!)).id
    }
  }
  await Promise.all(Array.from({ length: Math.min(parallel, bodies.length) }, lane))
  return ids
}

/**
 * What every drill's harness and workers need: `http` tasks may reach the receiver on
 * 127.0.0.1, and the per-tenant creation limit does not cap a drill's bursts.
 */
export const DRILL_ENV = { TASKLANE_HTTP_ALLOW_PRIVATE: 'true', TASKLANE_RATE_LIMIT_MAX: '0' }

/** Short locks and a fast reconciler: what Redis lost or refused comes back within a second or two. */
export const FAST_RECOVERY_ENV = {
  TASKLANE_LOCK_DURATION_MS: '2000',
  TASKLANE_STALLED_INTERVAL_MS: '1000',
  TASKLANE_RECONCILER_INTERVAL_MS: '300',
  TASKLANE_RECONCILER_MIN_AGE_MS: '500',
  TASKLANE_RECONCILER_STALE_RUNNING_MS: '2500',
}

/**
 * Polls Postgres until `count` of the tasks are terminal, or the time is up. A poll that fails
 * (the drill may have Postgres down at that moment) counts as nothing seen yet.
 */
export async function waitForTerminalCount (sql: postgres.Sql, tasks: DrillTask[], count: number, timeoutMs = 30_000): Promise<number> {
  const ids = tasks.map((x) => x.id)
  const deadline = Date.now() + timeoutMs
  let seen = 0
  for (;;) {
    try {
      const [row] = await sql<{ n: number }[]>`
        select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status in ('completed', 'failed', 'cancelled')`
      seen = row!.n
    } catch { /* down for now: poll again */ }
    if (seen >= count || Date.now() > deadline) return seen
    await sleep(50)
  }
}

/** A task of a drill: its id and the key its executions are recorded under by the receiver. */
export type DrillTask = { id: string, key: string }

export type FaultReport = {
  submitted: number
  completed: number
  /** Did not end completed. */
  lost: number
  /** More than one attempt carries a terminal outcome. */
  recordedTwice: number
  /** Handler executions the receiver recorded for these tasks. */
  executed: number
  /** Tasks whose handler ran more than once (at-least-once allows it after a lost or released attempt). */
  executedMoreThanOnce: number
  /** Tasks executed more often than they have attempts: a run no claim accounts for. */
  executedBeyondAttempts: number
  /** Completed tasks whose stored result carries no nonce of a recorded execution. */
  resultWithoutExecution: number
  lostAttempts: number
  releasedAttempts: number
  /** The statuses of the tasks that did not complete, held ones apart: what a failure looks into first. */
  notCompleted: Record<string, number>
}

/**
 * The figures every drill prints and judges. Recorded state comes from Postgres; executions
 * from the receiver the tasks' handlers called, so a task that completed without running,
 * or ran more often than its history says, shows.
 */
export async function faultReport (sql: postgres.Sql, tasks: DrillTask[], receiver: ExecutionReceiver): Promise<FaultReport> {
  const rows = await sql<{ id: string, status: string, held: boolean, attempts: number, terminal: number, lost: number, released: number, nonce: string | null }[]>`
    with mine as (select unnest(${tasks.map((x) => x.id)}::uuid[]) as id)
    select t.id, t.status, t.held, t.result -> 'body' ->> 'nonce' as nonce,
      count(a.attempt)::int as attempts,
      (count(*) filter (where a.outcome in ('completed', 'failed', 'cancelled')))::int as terminal,
      (count(*) filter (where a.outcome = 'lost'))::int as lost,
      (count(*) filter (where a.outcome = 'released'))::int as released
    from mine m join tasks t on t.id = m.id left join task_attempts a on a.task_id = t.id
    group by t.id, t.status, t.held, t.result`
  const byId = new Map(rows.map((r) => [r.id, r]))
  const report: FaultReport = {
    submitted: tasks.length, completed: 0, lost: 0, recordedTwice: 0, executed: 0, executedMoreThanOnce: 0,
    executedBeyondAttempts: 0, resultWithoutExecution: 0, lostAttempts: 0, releasedAttempts: 0, notCompleted: {},
  }
  for (const { id, key } of tasks) {
    const row = byId.get(id)
    const executions = receiver.executions(key)
    report.executed += executions.length
    if (executions.length > 1) report.executedMoreThanOnce++
    if (executions.length > (row?.attempts ?? 0)) report.executedBeyondAttempts++
    if (row?.status === 'completed') {
      report.completed++
      if (!executions.some((e) => e.nonce === row.nonce)) report.resultWithoutExecution++
    } else {
      const state = !row ? 'missing' : row.held ? `${row.status} (held)` : row.status
      report.notCompleted[state] = (report.notCompleted[state] ?? 0) + 1
    }
    if ((row?.terminal ?? 0) > 1) report.recordedTwice++
    report.lostAttempts += row?.lost ?? 0
    report.releasedAttempts += row?.released ?? 0
  }
  report.lost = report.submitted - report.completed
  return report
}

export function formatReport (name: string, r: FaultReport): string {
  return `${name}: submitted=${r.submitted} completed=${r.completed} lost=${r.lost} recorded-twice=${r.recordedTwice} ` +
    `executed=${r.executed} executed-more-than-once=${r.executedMoreThanOnce} executed-beyond-attempts=${r.executedBeyondAttempts} ` +
    `result-without-execution=${r.resultWithoutExecution} (lost attempts ${r.lostAttempts}, released attempts ${r.releasedAttempts})` +
    (r.lost > 0 ? `; not completed: ${Object.entries(r.notCompleted).map(([s, n]) => `${s} ${n}`).join(', ')}` : '')
}

/**
 * Prints the report and fails the test unless every task completed once, from an execution
 * that happened, and no task ran more often than its attempts (at-least-once allows a rerun
 * only for an attempt that was lost or released, and each of those is an attempt).
 */
export function judge (t: Test, name: string, report: FaultReport, minSubmitted = 300): void {
  t.comment(formatReport(name, report))
  t.ok(report.submitted >= minSubmitted, `at least ${minSubmitted} tasks in flight`)
  t.equal(report.lost, 0, 'no task lost')
  t.equal(report.recordedTwice, 0, 'no task recorded twice')
  t.ok(report.executed >= report.completed, 'at least one execution per completed task')
  t.equal(report.resultWithoutExecution, 0, 'every completed task\'s result comes from an execution the receiver saw')
  t.equal(report.executedBeyondAttempts, 0, 'no task executed more often than it has attempts')
}

/** Submits drill tasks through the harness' API, `parallel` at a time; every create must be accepted. */
export async function submitDrillTasks (h: Harness, tasks: { key: string, body: Record<string, unknown> }[], parallel = 25): Promise<DrillTask[]> {
  const ids = await submitTasks(h, tasks.map((x) => x.body), parallel)
  return tasks.map((x, i) => ({ id: ids[i]!, key: x.key }))
}

/** Sends a signal to a spawned worker and resolves with its exit code (null if killed by a signal). */
export async function signalAndWait (child: ChildProcess, signal: NodeJS.Signals): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  child.kill(signal)
  const [code, sig] = await exited
  return { code, signal: sig }
}
