import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { createServer, connect, type Server, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import type postgres from 'postgres'
import type { Test } from 'tap'
import type { Harness } from './harness.ts'

type Teardown = { teardown: (fn: () => unknown) => void }

/** A port nobody listens on right now (the OS picks it). */
export { deletePrefixKeys } from './services.ts'

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * A redis-server of the test's own on a free port, without persistence, so stopping it loses
 * every key, as a Redis restarted without AOF or RDB does. Register it before the harness:
 * teardowns run last-in first-out, so it outlives the harness that uses it.
 */
export async function startPrivateRedis (t: Teardown) {
  const port = await freePort()
  let child: ChildProcess | undefined

  async function start (): Promise<void> {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    const client = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => 50, maxRetriesPerRequest: null })
    try {
      await client.connect().catch(() => {})
      await Promise.race([client.ping(), sleep(10_000).then(() => { throw new Error('private redis did not start') })])
    } finally {
      client.disconnect()
    }
  }

  async function stop (): Promise<void> {
    if (!child || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }

  await start()
  t.teardown(stop)
  return { url: `redis://127.0.0.1:${port}`, port, start, stop }
}

/**
 * A TCP relay in front of Postgres that can cut every connection and refuse new ones, the way
 * a Postgres that went down looks to a client, without touching the shared server.
 */
export async function startPostgresRelay (t: Teardown, databaseUrl: string) {
  const target = new URL(databaseUrl)
  const sockets = new Set<Socket>()
  let server: Server | undefined
  const port = await freePort()

  async function up (): Promise<void> {
    server = createServer((client) => {
      const upstream = connect(Number(target.port || 5432), target.hostname)
      for (const s of [client, upstream]) { sockets.add(s); s.on('close', () => sockets.delete(s)); s.on('error', () => {}) }
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

  await up()
  t.teardown(down)
  const url = new URL(databaseUrl)
  url.host = `127.0.0.1:${port}`
  return { url: url.toString(), up, down }
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

/** `n` sleep tasks of `minMs`..`maxMs`, with a retry budget that outage retries cannot exhaust. */
export function sleepTasks (n: number, minMs: number, maxMs: number): Record<string, unknown>[] {
  return Array.from({ length: n }, (_, i) => ({
    type: 'sleep',
    payload: { ms: minMs + ((i * 7919) % (maxMs - minMs + 1)) },
    maxAttempts: 10,
    backoff: { type: 'fixed', delayMs: 50 },
  }))
}

/** Polls Postgres until `count` of the tasks are terminal, or the time is up. */
export async function waitForTerminalCount (sql: postgres.Sql, ids: string[], count: number, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const [row] = await sql<{ n: number }[]>`
      select count(*)::int as n from tasks where id = any(${ids}::uuid[]) and status in ('completed', 'failed', 'cancelled')`
    if (row!.n >= count || Date.now() > deadline) return row!.n
    await sleep(50)
  }
}

export type FaultReport = { submitted: number, completed: number, lost: number, recordedTwice: number, lostAttempts: number, releasedAttempts: number }

/**
 * The figures every fault test prints and judges: a task is lost when it did not end
 * completed; recorded twice when more than one of its attempts carries a terminal outcome
 * (the terminal transition and the closing of its attempt are one statement, so a second
 * terminal write would leave a second terminal attempt).
 */
export async function faultReport (sql: postgres.Sql, ids: string[]): Promise<FaultReport> {
  const [row] = await sql<{ completed: number, twice: number, lostAttempts: number, releasedAttempts: number }[]>`
    with mine as (select unnest(${ids}::uuid[]) as id),
    terminal as (
      select a.task_id, count(*) filter (where a.outcome in ('completed', 'failed', 'cancelled')) as n
      from task_attempts a join mine m on m.id = a.task_id group by a.task_id
    )
    select
      (select count(*)::int from tasks t join mine m on m.id = t.id where t.status = 'completed') as completed,
      (select count(*)::int from terminal where n > 1) as twice,
      (select count(*)::int from task_attempts a join mine m on m.id = a.task_id where a.outcome = 'lost') as "lostAttempts",
      (select count(*)::int from task_attempts a join mine m on m.id = a.task_id where a.outcome = 'released') as "releasedAttempts"`
  return {
    submitted: ids.length,
    completed: row!.completed,
    lost: ids.length - row!.completed,
    recordedTwice: row!.twice,
    lostAttempts: row!.lostAttempts,
    releasedAttempts: row!.releasedAttempts,
  }
}

/** Prints the report and fails the test unless nothing was lost or recorded twice. */
export function judge (t: Test, name: string, report: FaultReport, minSubmitted = 300): void {
  t.comment(`${name}: submitted=${report.submitted} completed=${report.completed} lost=${report.lost} recorded-twice=${report.recordedTwice} (lost attempts ${report.lostAttempts}, released attempts ${report.releasedAttempts})`)
  t.ok(report.submitted >= minSubmitted, `at least ${minSubmitted} tasks in flight`)
  t.equal(report.lost, 0, 'no task lost')
  t.equal(report.recordedTwice, 0, 'no task recorded twice')
}

/** Sends a signal to a spawned worker and resolves with its exit code (null if killed by a signal). */
export async function signalAndWait (child: ChildProcess, signal: NodeJS.Signals): Promise<{ code: number | null, signal: NodeJS.Signals | null }> {
  const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>
  child.kill(signal)
  const [code, sig] = await exited
  return { code, signal: sig }
}
