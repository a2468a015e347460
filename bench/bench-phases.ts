import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchOptions } from './bench-options.ts'
import type { BenchStack, ServiceProcess } from './bench-stack.ts'
import { runLoad, type LoadResult, type Percentiles } from './http-load.ts'
import { runPacedLoad } from './paced-load.ts'
import { createCpuMeter } from './proc-stats.ts'
import { measureTableWrites, type TableWrites } from './table-writes.ts'
import { createTaskReadout, type Window } from './task-readout.ts'

export type Route = 'single' | 'batch'

export type CreateFigures = LoadResult & { tasksPerSec: number }

export type EndToEndFigures = {
  route: Route
  workers: number
  windowSec: number
  requestsPerSec: number
  createdPerSec: number
  tasksPerSec: number
  unfinishedAfterDrain: number
  requestLatencyMs: Percentiles
  pickupMs: Percentiles
  endToEndMs: Percentiles
  cpuSecPer1kTasks: { api: number, worker: number, postgres: number, redis: number, loadGenerator: number }
  /** Round trips behind each task: Postgres commits in the bench database, Redis commands (all clients). */
  perTask: { postgresCommits: number, redisCommands: number }
  httpErrors: number
}

export type DrainFigures = {
  tasks: number
  completed: number
  tasksPerSec: number
  cpuSecPer1kTasks: { worker: number, postgres: number, redis: number }
  /** Round trips behind each task: Postgres commits of the bench database, Redis commands (all clients). */
  perTask?: { postgresCommits: number, redisCommands: number }
  /** Rows and index entries Postgres wrote per task, created and drained (pg_stat_user_tables deltas); not in smoke runs. */
  writes: TableWrites | null
}

/** What a window of work cost: CPU seconds per 1,000 tasks, and round trips per task. */
export type WindowCost = {
  cpuSecPer1kTasks: { api: number, client: number, postgres: number, redis: number }
  /**
   * Postgres commits of the bench database (pg_stat_database lags by up to its flush interval),
   * Redis commands (those scripts run included) and the reads Redis did from its clients' sockets
   * (about one per write a client made: commands pipelined together share one), and the bytes
   * they brought.
   */
  perTask: { postgresCommits: number, redisCommands: number, redisReads: number, redisBytesIn: number }
}

const ECHO = { type: 'echo', payload: { message: 'hello', n: 42 } }

export function bodyFor (route: Route, batchSize: number): string {
  return route === 'single' ? JSON.stringify(ECHO) : JSON.stringify({ tasks: Array.from({ length: batchSize }, () => ECHO) })
}

/** A count per task, to two decimals. */
const perTaskOf = (n: number, tasks: number): number => Math.round((n / Math.max(1, tasks)) * 100) / 100

type Counters = { redisCpu: number, redisCommands: number, redisReads: number, redisBytesIn: number, postgresCommits: number }

/** Redis' CPU seconds and commands so far, and the commits of the bench database. */
async function counters (stack: BenchStack): Promise<Counters> {
  const info = await stack.redis.info()
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0)
  const [row] = await stack.sql<{ commits: number }[]>`
    select xact_commit::float8 as commits from pg_stat_database where datname = current_database()`
  return {
    redisCpu: field('used_cpu_sys') + field('used_cpu_user'),
    redisCommands: field('total_commands_processed'),
    redisReads: field('total_reads_processed'),
    redisBytesIn: field('total_net_input_bytes'),
    postgresCommits: row?.commits ?? 0,
  }
}

const per1k = (seconds: number, tasks: number): number => (tasks > 0 ? Math.round((seconds / tasks) * 1000 * 1000) / 1000 : 0)

/** The phases of one run against one API process; each phase leaves empty tables and queues behind. */
export function createBenchPhases (deps: { stack: BenchStack, api: ServiceProcess, prefix: string, options: BenchOptions }) {
  const { stack, api, prefix, options } = deps
  const readout = createTaskReadout(stack.sql)
  const apiUrl = `http://127.0.0.1:${api.port}`
  const workerPeakRss: number[] = []

  async function reset (): Promise<void> {
    await stack.dropPrefix(prefix)
    await stack.resetTables()
  }

  return {
    workerPeakRss,

    /** Whether the API serves POST /v1/tasks/batch yet (it is built alongside the benchmark). */
    async hasBatchRoute (): Promise<boolean> {
      const res = await fetch(`${apiUrl}/v1/tasks/batch`, {
        method: 'POST', headers: { 'content-type': 'application/json' }, body: bodyFor('batch', 1),
      })
      await res.arrayBuffer()
      await reset()
      return res.status === 202
    },

    /**
     * Opens a window over the API, this process (where an in-process client runs), Postgres and
     * Redis; closing it with the tasks done answers CPU seconds per 1,000 of them and the
     * round trips behind each (Postgres commits of the bench database, Redis commands).
     */
    async meterWindow (): Promise<(done: number) => Promise<WindowCost>> {
      const meters = {
        api: createCpuMeter(async () => [api.pid]),
        client: createCpuMeter(async () => [process.pid]),
        postgres: createCpuMeter(() => readout.postgresPids(stack.dbName)),
      }
      await Promise.all(Object.values(meters).map((m) => m.start()))
      const before = await counters(stack)
      return async (done) => {
        const [apiCpu, clientCpu, postgresCpu] = await Promise.all(Object.values(meters).map((m) => m.stop()))
        const after = await counters(stack)
        const perTask = (n: number): number => perTaskOf(n, done)
        return {
          cpuSecPer1kTasks: { api: per1k(apiCpu!, done), client: per1k(clientCpu!, done), postgres: per1k(postgresCpu!, done), redis: per1k(after.redisCpu - before.redisCpu, done) },
          perTask: {
            postgresCommits: perTask(after.postgresCommits - before.postgresCommits),
            redisCommands: perTask(after.redisCommands - before.redisCommands),
            redisReads: perTask(after.redisReads - before.redisReads),
            redisBytesIn: Math.round((after.redisBytesIn - before.redisBytesIn) / Math.max(1, done)),
          },
        }
      }
    },

    /** Create throughput of one route with no worker running. */
    async create (route: Route): Promise<CreateFigures> {
      const perRequest = route === 'single' ? 1 : options.batchSize
      const result = await runLoad({
        url: `${apiUrl}/v1/tasks${route === 'batch' ? '/batch' : ''}`,
        body: bodyFor(route, options.batchSize),
        connections: route === 'single' ? options.connections : options.batchConnections,
        durationSec: options.createDurationSec,
      })
      await reset()
      return { ...result, tasksPerSec: result.requestsPerSec * perRequest }
    },

    /**
     * The worker side alone, as raw BullMQ is measured: `count` echo tasks are created through
     * the batch route first, then one worker process drains them.
     */
    async drain (count: number): Promise<DrainFigures> {
      // Reading settled statistics waits for the backends' reports (seconds): not worth it in a smoke run.
      const writes = options.smoke ? undefined : await measureTableWrites(stack.sql)
      const batches = Math.ceil(count / 1_000)
      for (let i = 0; i < batches; i++) {
        const res = await fetch(`${apiUrl}/v1/tasks/batch`, {
          method: 'POST', headers: { 'content-type': 'application/json' }, body: bodyFor('batch', Math.min(1_000, count - i * 1_000)),
        })
        if (res.status !== 202) throw new Error(`drain: creating tasks failed with ${res.status}: ${await res.text()}`)
        await res.arrayBuffer().catch(() => {})
      }
      const worker = await stack.startWorker(prefix, 0, options.concurrency)
      const meters = {
        worker: createCpuMeter(async () => [worker.pid]),
        postgres: createCpuMeter(() => readout.postgresPids(stack.dbName)),
      }
      await Promise.all(Object.values(meters).map((m) => m.start()))
      const before = await counters(stack)
      const started = performance.now()
      const deadline = Date.now() + 120_000
      let done = 0
      while (done < count && Date.now() < deadline) {
        await sleep(50)
        const [row] = await stack.sql<{ n: number }[]>`select count(*)::int as n from tasks where status = 'completed'`
        done = row!.n
      }
      const seconds = (performance.now() - started) / 1000
      const [workerCpu, postgresCpu] = await Promise.all(Object.values(meters).map((m) => m.stop()))
      const after = await counters(stack)
      workerPeakRss.push((await worker.stop()) ?? 0)
      const written = writes ? await writes(done) : null
      await reset()
      return {
        writes: written,
        tasks: count,
        completed: done,
        tasksPerSec: Math.round(done / seconds),
        cpuSecPer1kTasks: { worker: per1k(workerCpu!, done), postgres: per1k(postgresCpu!, done), redis: per1k(after.redisCpu - before.redisCpu, done) },
        perTask: {
          postgresCommits: perTaskOf(after.postgresCommits - before.postgresCommits, done),
          redisCommands: perTaskOf(after.redisCommands - before.redisCommands, done),
        },
      }
    },

    /**
     * Tasks created over HTTP while `workerCount` worker processes run them. Throughput is what
     * Postgres recorded completed inside the window; latencies are of the window's tasks.
     */
    async endToEnd (route: Route, workerCount: number, rate?: number, workerEnv: Record<string, string> = {}): Promise<EndToEndFigures> {
      const workers = await Promise.all(Array.from({ length: workerCount }, (_, i) => stack.startWorker(prefix, i, options.concurrency, workerEnv)))
      const meters = {
        api: createCpuMeter(async () => [api.pid]),
        worker: createCpuMeter(async () => workers.map((w) => w.pid)),
        postgres: createCpuMeter(() => readout.postgresPids(stack.dbName)),
        loadGenerator: createCpuMeter(async () => [process.pid]),
      }
      let from = new Date()
      let opened: Promise<[unknown, Counters]> | undefined
      const onWarm = () => {
        from = new Date()
        opened = Promise.all([Promise.all(Object.values(meters).map((m) => m.start())), counters(stack)])
      }
      const url = `${apiUrl}/v1/tasks${route === 'batch' ? '/batch' : ''}`
      const body = bodyFor(route, options.batchSize)
      const load = rate
        ? await runPacedLoad({ url, body, ratePerSec: rate, durationSec: options.rateDurationSec, warmupSec: options.warmupSec, connections: 20, onWarm })
        : await runLoad({
          url, body, onWarm,
          connections: route === 'single' ? options.connections : options.batchConnections,
          durationSec: options.durationSec,
          warmupSec: options.warmupSec,
        })
      const window: Window = { from, to: new Date() }
      const [, before] = await opened!
      const [apiCpu, workerCpu, postgresCpu, loadCpu] = await Promise.all(Object.values(meters).map((m) => m.stop()))
      const after = await counters(stack)
      const redisCpu = after.redisCpu - before.redisCpu
      const windowSec = (window.to.getTime() - window.from.getTime()) / 1000
      const { created, completed } = await readout.counts(window)

      // Let the window's last tasks finish so their latency counts, without waiting out a backlog.
      const drainUntil = Date.now() + (options.smoke ? 1_000 : 3_000)
      let unfinished = await readout.unfinished(window)
      while (unfinished > 0 && Date.now() < drainUntil) {
        await sleep(100)
        unfinished = await readout.unfinished(window)
      }
      const latency = await readout.latencies(window)
      for (const worker of workers) workerPeakRss.push((await worker.stop()) ?? 0)
      await reset()

      const through = (created + completed) / 2
      return {
        route,
        workers: workerCount,
        windowSec: Math.round(windowSec * 10) / 10,
        requestsPerSec: load.requestsPerSec,
        createdPerSec: Math.round(created / windowSec),
        tasksPerSec: Math.round(completed / windowSec),
        unfinishedAfterDrain: unfinished,
        requestLatencyMs: load.latencyMs,
        pickupMs: latency.pickupMs,
        endToEndMs: latency.endToEndMs,
        cpuSecPer1kTasks: {
          api: per1k(apiCpu!, created),
          worker: per1k(workerCpu!, completed),
          postgres: per1k(postgresCpu!, through),
          redis: per1k(redisCpu, through),
          loadGenerator: per1k(loadCpu!, created),
        },
        perTask: {
          // pg_stat_database lags by up to its flush interval: a few hundred commits at most.
          postgresCommits: Math.round(((after.postgresCommits - before.postgresCommits) / Math.max(1, through)) * 100) / 100,
          redisCommands: Math.round(((after.redisCommands - before.redisCommands) / Math.max(1, through)) * 100) / 100,
        },
        httpErrors: load.errors + load.non2xx,
      }
    },
  }
}
