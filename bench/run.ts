// The benchmark's entry point: `npm run bench -- --help`. Prints a table, then one JSON line.
import { cpus, totalmem } from 'node:os'
import { parseBenchOptions, HELP, type BenchOptions } from './bench-options.ts'
import { createBenchPhases } from './bench-phases.ts'
import { formatReport, type BenchResult } from './bench-report.ts'
import { createBenchStack } from './bench-stack.ts'
import { runFairness } from './fairness-phase.ts'
import { runNotifyHang } from './notify-hang-phase.ts'
import { startOwnRedis } from './own-redis.ts'
import { runRawBullmq } from './raw-bullmq.ts'
import { runPullPhase } from './pull-phase.ts'
import { runWebhookPhase } from './webhook-phase.ts'
import { createPeersPhase, type System } from './peers-phase.ts'
import { summarizePeers } from './peers-report.ts'

let options: BenchOptions
try {
  options = parseBenchOptions(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`bench: ${(err as Error).message}\n`)
  process.exit(2)
}
if (options.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}

const progress = (message: string): void => { process.stderr.write(`bench: ${message}\n`) }

const ownRedis = options.ownRedis ? await startOwnRedis() : undefined
const redisUrl = ownRedis?.url ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'
const stack = await createBenchStack({
  databaseUrl: process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
  redisUrl,
  logLevel: options.logLevel,
  profileDir: options.profileDir,
  env: {
    ...(options.poolSize ? { TASKLANE_DB_POOL_SIZE: String(options.poolSize) } : {}),
    ...(options.nodeOptions ? { NODE_OPTIONS: options.nodeOptions } : {}),
    ...options.env,
  },
})
let failed = false
try {
  const [pg] = await stack.sql<{ version: string }[]>`select current_setting('server_version') as version`
  const redisVersion = /^redis_version:(\S+)/m.exec(await stack.redis.info('server'))?.[1] ?? '?'
  const result: BenchResult = {
    bench: 'tasklane',
    mode: options.smoke ? 'smoke' : 'full',
    startedAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length, cpuModel: cpus()[0]?.model.trim() ?? '?', memoryGb: Math.round(totalmem() / 2 ** 30),
      node: process.version, postgres: pg!.version, redis: redisVersion,
    },
    settings: {
      durationSec: options.durationSec, warmupSec: options.warmupSec, createDurationSec: options.createDurationSec,
      rate: options.rate, workers: options.workers, concurrency: options.concurrency, connections: options.connections,
      batchConnections: options.batchConnections, batchSize: options.batchSize, rawJobs: options.rawJobs, peerTasks: options.peerTasks, peerRounds: options.peerRounds, drainTasks: options.drainTasks,
      logLevel: options.logLevel, poolSize: options.poolSize ?? 'default', nodeOptions: options.nodeOptions ?? '',
      env: options.env, baselineEnv: options.baselineEnv, ownRedis: options.ownRedis,
    },
    rawBullmq: null,
    peers: null,
    create: { single: null, batch: null },
    drain: null,
    fixedRate: null,
    endToEnd: [],
    fairness: null,
    peakRssMb: { api: null, worker: null },
    ratioToRawBullmq: { single: null, batch: null },
    notes: [],
  }
  progress(`database ${stack.dbName}, logs in ${stack.logDir}`)

  if (options.phases.has('raw')) {
    progress(`raw BullMQ: ${options.rawJobs} jobs`)
    const prefix = stack.newPrefix()
    result.rawBullmq = await runRawBullmq({ redisUrl, prefix, jobs: options.rawJobs, concurrency: options.concurrency })
    await stack.dropPrefix(prefix)
  }

  // Before the main API starts, so nothing else of Tasklane's is running beside the peers.
  if (options.phases.has('peers')) {
    const settings = { rounds: options.peerRounds, tasks: options.peerTasks, connections: options.connections }
    const runs = await createPeersPhase({ stack, options: { ...settings, concurrency: options.concurrency, systems: options.peerSystems as System[], baselineRoot: options.baselineRoot, baselineEnv: options.baselineEnv } }).run(progress)
    result.peers = summarizePeers(runs, settings)
  }

  const prefix = stack.newPrefix()
  const api = await stack.startApi(prefix)
  const phases = createBenchPhases({ stack, api, prefix, options })
  const batch = await phases.hasBatchRoute()
  if (!batch) result.notes.push('POST /v1/tasks/batch is not served by this build: batch figures are missing')
  const routes = batch ? (['single', 'batch'] as const) : (['single'] as const)

  if (options.phases.has('create')) {
    for (const route of routes) {
      progress(`create: ${route}, ${options.createDurationSec} s`)
      result.create[route] = await phases.create(route)
    }
  }
  if (options.phases.has('drain') && batch) {
    progress(`drain: ${options.drainTasks} tasks, 1 worker`)
    result.drain = await phases.drain(options.drainTasks)
  }
  if (options.phases.has('pull') && batch) {
    progress(`pull: ${options.drainTasks} tasks, the TypeScript client leasing 50 a request`)
    result.pull = await runPullPhase({ apiUrl: `http://127.0.0.1:${api.port}`, sql: stack.sql, count: options.drainTasks, meter: phases.meterWindow })
    await stack.dropPrefix(prefix)
    await stack.resetTables()
  }
  if (options.phases.has('webhook') && batch) {
    progress(`webhook: ${options.drainTasks} tasks, 1 worker, ${options.concurrency} requests at a time`)
    const { workerPeakRssMb, ...figures } = await runWebhookPhase({
      apiUrl: `http://127.0.0.1:${api.port}`, sql: stack.sql, count: options.drainTasks, concurrency: options.concurrency,
      startWorker: (env) => stack.startWorker(prefix, 0, options.concurrency, env),
    })
    result.webhook = figures
    if (workerPeakRssMb !== null) phases.workerPeakRss.push(workerPeakRssMb)
    await stack.dropPrefix(prefix)
    await stack.resetTables()
  }
  if (options.phases.has('rate')) {
    progress(`fixed rate: ${options.rate} tasks/s, 1 worker, ${options.rateDurationSec} s`)
    result.fixedRate = { ...(await phases.endToEnd('single', 1, options.rate)), targetPerSec: options.rate }
  }
  if (options.phases.has('e2e')) {
    for (const workers of options.workers) {
      for (const route of routes) {
        progress(`end to end: ${route}, ${workers} worker(s), ${options.warmupSec} + ${options.durationSec} s`)
        result.endToEnd.push(await phases.endToEnd(route, workers))
      }
    }
  }
  if (options.phases.has('e2e-notify')) {
    result.notifyHang = []
    // The smoke run only keeps the phase from rotting: one route is enough for that.
    for (const route of options.smoke ? routes.slice(0, 1) : routes) {
      progress(`end to end beside a hanging notification endpoint: ${route}, ${options.workers[0]} worker(s), without and with, ${options.warmupSec} + ${options.durationSec} s each`)
      result.notifyHang.push(await runNotifyHang({ apiUrl: `http://127.0.0.1:${api.port}`, route, workers: options.workers[0]!, endToEnd: phases.endToEnd }))
    }
  }
  // One database holds one deployment: the fairness phase starts its own API and worker, and
  // this API's admission loop would otherwise admit that phase's held tasks into its own queues.
  const apiPeakRss = (await api.stop()) ?? null
  if (options.phases.has('fair')) {
    progress(`fair sharing: a tenant at 20 tasks/s alone, then beside a saturating tenant, 1 worker, ${options.warmupSec} + ${options.rateDurationSec} s each`)
    result.fairness = await runFairness({ stack, options })
  }
  result.peakRssMb = { api: apiPeakRss, worker: phases.workerPeakRss.length > 0 ? Math.max(...phases.workerPeakRss) : null }
  if (result.rawBullmq) {
    const raw = result.rawBullmq.drainPerSec
    const share = (perSec: number) => Math.round((perSec / raw) * 1000) / 1000
    const best = (route: string) => Math.max(0, ...result.endToEnd.filter((e) => e.route === route).map((e) => e.tasksPerSec))
    const ratio = (route: string) => (result.endToEnd.some((e) => e.route === route) ? share(best(route)) : null)
    result.ratioToRawBullmq = { single: ratio('single'), batch: ratio('batch'), drain: result.drain ? share(result.drain.tasksPerSec) : null }
  }

  process.stdout.write(`${formatReport(result)}\n\n${JSON.stringify(result)}\n`)
} catch (err) {
  failed = true
  progress(`failed: ${(err as Error).stack ?? String(err)}`)
  progress(`service logs are in ${stack.logDir}`)
} finally {
  await stack.close(options.keep)
  await ownRedis?.stop()
}
process.exit(failed ? 1 : 0)
