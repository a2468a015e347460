import { spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { closeSync, mkdtempSync, openSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { createDbClient } from '../services/core/db/db-client.ts'
import { runMigrations } from '../services/core/db/migrate.ts'
import { buildServices, type Entries } from './built-services.ts'
import { peakRssMb } from './proc-stats.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export type StackOptions = {
  databaseUrl: string
  redisUrl: string
  logLevel: string
  /** Directory for --cpu-prof output of every child, or undefined. */
  profileDir: string | undefined
  /** Extra environment for the API and the workers (e.g. TASKLANE_DB_POOL_SIZE). */
  env: Record<string, string>
}

export type ServiceProcess = {
  pid: number
  port: number
  /** SIGTERM, wait for a clean exit (profiles are written then); returns the peak RSS in MiB. */
  stop: () => Promise<number | undefined>
}

export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  server.close()
  await once(server, 'close')
  return port
}

// Generous: on a shared, busy machine a process that loads its modules at start can take tens
// of seconds to listen; the figures are measured after it answers, never this wait.
async function waitUntilAnswers (url: string, child: ChildProcess, logFile: string, timeoutMs = 90_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${url}: the process exited with ${child.exitCode}; see ${logFile}`)
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(1_000) })
      if (res.ok) return
    } catch { /* not listening yet */ }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms; see ${logFile}`)
    await sleep(100)
  }
}

/**
 * Everything the benchmark runs against: a fresh database on the given server, and the API and
 * worker processes started as in production (node dist/..., built here first), each on free ports.
 */
export async function createBenchStack (options: StackOptions) {
  // Once per checkout (the baseline's too, at its first start), before any process runs.
  // Spawned with the checkout as cwd, so an absolute entry point runs like `node dist/...`.
  const builds = new Map<string, Promise<Entries>>()
  const entriesOf = (root: string): Promise<Entries> => {
    const key = resolve(root) // --baseline . is this checkout: one build
    if (!builds.has(key)) builds.set(key, buildServices(key))
    return builds.get(key)!
  }
  await entriesOf(ROOT)
  const tag = `${Date.now().toString(36)}_${randomBytes(3).toString('hex')}`
  const dbName = `tasklane_bench_${tag}`
  const logDir = mkdtempSync(join(tmpdir(), 'tasklane-bench-'))
  const admin = postgres(options.databaseUrl, { max: 1, onnotice: () => {}, connection: { application_name: 'tasklane-bench' } })
  await admin.unsafe(`create database "${dbName}"`)
  const url = new URL(options.databaseUrl)
  url.pathname = `/${dbName}`
  const databaseUrl = url.toString()
  const migrator = createDbClient(databaseUrl, { max: 1, applicationName: 'tasklane-bench' })
  await runMigrations(migrator.db)
  await migrator.close()
  const sql = postgres(databaseUrl, { max: 2, onnotice: () => {}, connection: { application_name: 'tasklane-bench' } })
  const redis = new Redis(options.redisUrl, { connectionName: 'tasklane-bench', maxRetriesPerRequest: 3 })
  const children = new Set<ChildProcess>()
  const prefixes: string[] = []
  let serial = 0

  function spawnService (script: string, name: string, env: Record<string, string>, root = ROOT): { child: ChildProcess, logFile: string } {
    const logFile = join(logDir, `${name}.log`)
    // The child writes its log straight into the file: relaying it through this process
    // would cost the load generator CPU and make the child's writes block on a pipe.
    const out = openSync(logFile, 'a')
    const flags = options.profileDir ? ['--cpu-prof', `--cpu-prof-dir=${options.profileDir}`, `--cpu-prof-name=${name}.cpuprofile`] : []
    const child = spawn(process.execPath, [...flags, resolve(root, script)], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? '',
        DATABASE_URL: databaseUrl,
        REDIS_URL: options.redisUrl,
        HOST: '127.0.0.1',
        TASKLANE_AUTH: 'disabled',
        LOG_LEVEL: options.logLevel,
        TASKLANE_SHUTDOWN_GRACE_MS: '3000',
        // The per-tenant creation limit would cap the load at its quota: the bench measures capacity.
        TASKLANE_RATE_LIMIT_MAX: '0',
        ...options.env,
        ...env,
      },
      stdio: ['ignore', out, out],
    })
    closeSync(out)
    children.add(child)
    child.once('exit', () => children.delete(child))
    return { child, logFile }
  }

  function handle (child: ChildProcess, port: number): ServiceProcess {
    return {
      pid: child.pid!,
      port,
      async stop () {
        const rss = peakRssMb(child.pid!)
        if (child.exitCode === null && child.signalCode === null) {
          const exited = once(child, 'exit')
          child.kill('SIGTERM')
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000)
          await exited
          clearTimeout(timer)
        }
        return rss
      },
    }
  }

  return {
    dbName,
    databaseUrl,
    logDir,
    sql,
    redis,
    /** A fresh BullMQ prefix, so each phase starts with empty queues. */
    newPrefix (): string {
      const prefix = `tlbench_${tag}_${++serial}`
      prefixes.push(prefix)
      return prefix
    },
    /** `root` runs another checkout's API (a baseline to compare a change with); its migrations must match. */
    async startApi (prefix: string, env: Record<string, string> = {}, root = ROOT): Promise<ServiceProcess> {
      const port = await freePort()
      const metricsPort = await freePort()
      const { child, logFile } = spawnService((await entriesOf(root)).api, `api-${serial}`, {
        PORT: String(port), METRICS_PORT: String(metricsPort), TASKLANE_QUEUE_PREFIX: prefix, ...env,
      }, root)
      await waitUntilAnswers(`http://127.0.0.1:${port}/readyz`, child, logFile)
      return handle(child, port)
    },
    /**
     * Any other process of the benchmark (the peers Tasklane is measured beside), started like
     * the API and workers: same Node, flags and environment, ready when `readyPath` on `port` answers.
     */
    async startProcess (script: string, name: string, env: Record<string, string>, port: number, readyPath = '/readyz'): Promise<ServiceProcess> {
      const { child, logFile } = spawnService(script, `${name}-${serial}`, { ...env, PORT: String(port) })
      await waitUntilAnswers(`http://127.0.0.1:${port}${readyPath}`, child, logFile)
      return handle(child, port)
    },
    async startWorker (prefix: string, index: number, concurrency: number, env: Record<string, string> = {}, root = ROOT): Promise<ServiceProcess> {
      const port = await freePort()
      const { child, logFile } = spawnService((await entriesOf(root)).worker, `worker-${serial}-${index}`, {
        METRICS_PORT: String(port), TASKLANE_QUEUE_PREFIX: prefix,
        TASKLANE_QUEUES: `default:${concurrency}`, TASKLANE_WORKER_ID: `bench-${serial}-${index}`, ...env,
      }, root)
      await waitUntilAnswers(`http://127.0.0.1:${port}/readyz`, child, logFile)
      return handle(child, port)
    },
    /** Empties the task tables between phases; the processes using them are stopped first. */
    async resetTables (): Promise<void> {
      await sql`truncate task_attempts, tasks cascade`
    },
    /** Deletes every Redis key under a prefix (faster than obliterating a queue of 100k jobs). */
    async dropPrefix (prefix: string): Promise<void> {
      let cursor = '0'
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
        cursor = next
        if (keys.length > 0) await redis.unlink(...keys)
      } while (cursor !== '0')
    },
    /** Stops whatever still runs, drops the database and every prefix this run made. */
    async close (keepDatabase = false): Promise<void> {
      await Promise.all([...children].map(async (child) => {
        const exited = once(child, 'exit')
        child.kill('SIGKILL')
        await exited
      }))
      for (const prefix of prefixes) await this.dropPrefix(prefix).catch(() => {})
      redis.disconnect()
      await sql.end({ timeout: 5 })
      if (!keepDatabase) await admin.unsafe(`drop database if exists "${dbName}" with (force)`)
      await admin.end({ timeout: 5 })
      for (const build of builds.values()) await build.then((b) => b.remove(), () => {})
    },
  }
}

export type BenchStack = Awaited<ReturnType<typeof createBenchStack>>

/**
 * The stack of a drill run from the command line (soak, growth, schedule lag, index churn):
 * DATABASE_URL and REDIS_URL or the local defaults, warnings only, no profile.
 */
export function createDrillStack (env: Record<string, string> = {}) {
  return createBenchStack({
    databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
    redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    logLevel: 'warn',
    profileDir: undefined,
    env,
  })
}
