import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import type { BenchStack, ServiceProcess } from './bench-stack.ts'
import { buildPeers } from './built-services.ts'
import { freePort } from './bench-stack.ts'
import { runLoad, type Percentiles } from './http-load.ts'
import { createCpuMeter } from './proc-stats.ts'
import { createTaskReadout } from './task-readout.ts'

const ROOT = fileURLToPath(new URL('..', import.meta.url))

export const SYSTEMS = ['tasklane', 'baseline', 'byHand', 'pgBoss1', 'pgBoss50'] as const
export type System = typeof SYSTEMS[number]

export type PeerRun = {
  system: System
  round: number
  tasks: number
  /** Tasks recorded completed divided by the time from the first POST to the last completion. */
  tasksPerSec: number
  requestLatencyMs: Percentiles
  httpErrors: number
  cpuMsPerTask: { api: number, worker: number, postgres: number, redis: number, total: number }
  redisCommandsPerTask: number
  peakRssMb: { api: number, worker: number }
}

export type PeerOptions = {
  tasks: number
  rounds: number
  connections: number
  concurrency: number
  systems: readonly System[]
  /** Another checkout of Tasklane run as the system `baseline`, to measure a change against in one run. */
  baselineRoot?: string | undefined
  /** Environment of the baseline's API and worker only (over the stack's), e.g. other NODE_OPTIONS. */
  baselineEnv?: Record<string, string>
}

const BODY = JSON.stringify({ type: 'echo', payload: { message: 'hello', n: 42 } })

// Tasklane runs as it is deployed, with authentication on: every request presents this key.
const API_KEY = 'tl_bench-peers-key-0123456789abcdef'

type Running = {
  api: ServiceProcess
  worker: ServiceProcess
  path: string
  headers?: Record<string, string>
  /** Completed tasks and the wall-clock time (ms) of the last completion, from the system's own table. */
  progress: () => Promise<{ completed: number, lastAt: number }>
  cleanUp: () => Promise<void>
}

async function redisCounters (stack: BenchStack): Promise<{ cpu: number, commands: number }> {
  const info = await stack.redis.info()
  const field = (name: string): number => Number(new RegExp(`^${name}:([0-9.]+)`, 'm').exec(info)?.[1] ?? 0)
  return { cpu: field('used_cpu_sys') + field('used_cpu_user'), commands: field('total_commands_processed') }
}

/**
 * Tasklane and the two peers it should beat, on one workload: `tasks` echo tasks created by
 * single POSTs over `connections` connections while one worker process (concurrency as
 * Tasklane's) runs them. Every system gets fresh processes each round and the rounds interleave
 * the systems, rotating who goes first, so drift of the machine falls on all of them.
 */
export function createPeersPhase (deps: { stack: BenchStack, options: PeerOptions }) {
  const { stack, options } = deps
  const readout = createTaskReadout(stack.sql)
  const sql = stack.sql
  let schemaSerial = 0
  // Built at the first peer's start: a run of Tasklane alone needs no build.
  let peers: ReturnType<typeof buildPeers> | undefined
  const peer = async (name: string): Promise<string> => (await (peers ??= buildPeers(ROOT))).path(name)

  const lastAt = (row: { completed: number, last: number | null } | undefined) => ({ completed: row?.completed ?? 0, lastAt: Number(row?.last ?? 0) })

  async function start (system: System): Promise<Running> {
    if (system === 'tasklane' || system === 'baseline') {
      const prefix = stack.newPrefix()
      const root = system === 'baseline' ? options.baselineRoot : undefined
      const env = { TASKLANE_AUTH: 'required', TASKLANE_API_KEYS: `default:${API_KEY}`, ...(system === 'baseline' ? options.baselineEnv ?? {} : {}) }
      const [api, worker] = await Promise.all([stack.startApi(prefix, env, root), stack.startWorker(prefix, 0, options.concurrency, env, root)])
      return {
        api, worker, path: '/v1/tasks', headers: { authorization: `Bearer ${API_KEY}` },
        progress: async () => lastAt((await sql<{ completed: number, last: number | null }[]>`
          select count(*)::int as completed, extract(epoch from max(finished_at)) * 1000 as last from tasks where status = 'completed'`)[0]),
        cleanUp: async () => { await stack.dropPrefix(prefix); await stack.resetTables() },
      }
    }
    if (system === 'byHand') {
      const prefix = stack.newPrefix()
      const env = { PEER_PREFIX: prefix, PEER_CONCURRENCY: String(options.concurrency) }
      const [api, worker] = await Promise.all([
        stack.startProcess(await peer('by-hand-api'), 'by-hand-api', env, await freePort()),
        stack.startProcess(await peer('by-hand-worker'), 'by-hand-worker', env, await freePort()),
      ])
      return {
        api, worker, path: '/tasks',
        progress: async () => lastAt((await sql<{ completed: number, last: number | null }[]>`
          select count(*)::int as completed, extract(epoch from max(finished_at)) * 1000 as last from hand_tasks where status = 'completed'`)[0]),
        cleanUp: async () => { await stack.dropPrefix(prefix); await sql`truncate hand_tasks` },
      }
    }
    // A fresh schema a run: pg-boss installs it at start, outside the measured window.
    const schema = `pgboss_bench_${++schemaSerial}`
    const env = { PEER_SCHEMA: schema, PEER_BATCH_SIZE: system === 'pgBoss1' ? '1' : '50', PEER_NOTIFY: system === 'pgBoss1' ? '1' : '0', PEER_CONCURRENCY: String(options.concurrency) }
    const [api, worker] = await Promise.all([
      stack.startProcess(await peer('pg-boss-api'), `${system}-api`, env, await freePort()),
      stack.startProcess(await peer('pg-boss-worker'), `${system}-worker`, env, await freePort()),
    ])
    return {
      api, worker, path: '/tasks',
      progress: async () => lastAt((await sql.unsafe<{ completed: number, last: number | null }[]>(
        `select count(*)::int as completed, extract(epoch from max(completed_on)) * 1000 as last from "${schema}".job where state = 'completed'`))[0]),
      cleanUp: async () => { await sql.unsafe(`drop schema if exists "${schema}" cascade`) },
    }
  }

  async function measure (system: System, round: number): Promise<PeerRun> {
    const running = await start(system)
    const { api, worker } = running
    const meters = {
      api: createCpuMeter(async () => [api.pid]),
      worker: createCpuMeter(async () => [worker.pid]),
      postgres: createCpuMeter(() => readout.postgresPids(stack.dbName)),
    }
    try {
      await Promise.all(Object.values(meters).map((m) => m.start()))
      const redisBefore = await redisCounters(stack)
      const startedAt = Date.now()
      const load = await runLoad({ url: `http://127.0.0.1:${api.port}${running.path}`, body: BODY, headers: running.headers, connections: options.connections, durationSec: 0, amount: options.tasks })
      const accepted = load.statusCodes['202'] ?? 0
      const deadline = Date.now() + Math.max(60_000, options.tasks * 5)
      let progress = await running.progress()
      while (progress.completed < accepted && Date.now() < deadline) {
        await sleep(100)
        progress = await running.progress()
      }
      const [apiCpu, workerCpu, postgresCpu] = await Promise.all(Object.values(meters).map((m) => m.stop()))
      const redisAfter = await redisCounters(stack)
      const done = progress.completed
      const ms = (seconds: number) => (done > 0 ? Math.round((seconds * 1000 / done) * 1000) / 1000 : 0)
      const cpu = { api: ms(apiCpu!), worker: ms(workerCpu!), postgres: ms(postgresCpu!), redis: ms(redisAfter.cpu - redisBefore.cpu) }
      return {
        system,
        round,
        tasks: done,
        tasksPerSec: Math.round(done / (Math.max(1, progress.lastAt - startedAt) / 1000)),
        requestLatencyMs: load.latencyMs,
        httpErrors: load.errors + load.non2xx + (options.tasks - accepted),
        cpuMsPerTask: { ...cpu, total: Math.round((cpu.api + cpu.worker + cpu.postgres + cpu.redis) * 1000) / 1000 },
        redisCommandsPerTask: done > 0 ? Math.round(((redisAfter.commands - redisBefore.commands) / done) * 10) / 10 : 0,
        peakRssMb: { api: (await api.stop()) ?? 0, worker: (await worker.stop()) ?? 0 },
      }
    } finally {
      await api.stop()
      await worker.stop()
      await running.cleanUp()
    }
  }

  return {
    /** Every round, every system; `progress` is told what runs next. */
    async run (progress: (message: string) => void): Promise<PeerRun[]> {
      const runs: PeerRun[] = []
      try {
        for (let round = 1; round <= options.rounds; round++) {
          const systems = options.systems
          const order = systems.map((_, i) => systems[(i + round - 1) % systems.length]!)
          for (const system of order) {
            progress(`peers: round ${round}/${options.rounds}, ${system}, ${options.tasks} tasks`)
            runs.push(await measure(system, round))
          }
        }
      } finally {
        await peers?.then((built) => built.remove(), () => {})
      }
      return runs
    },
  }
}
