import { resolve } from 'node:path'
import { parseArgs } from 'node:util'

export const HELP = `Usage: npm run bench -- [options]      (make bench runs it with the defaults)

Measures Tasklane on the local Postgres and Redis: builds it as npm run build does (into .tmp/,
removed at the end), then starts the API (dist/api/server.js, TASKLANE_AUTH=disabled, no
creation rate limit) and worker processes (dist/worker/main.js, concurrency 100), the
JavaScript the images run, on free ports, in a fresh database (dropped at the end) and a fresh
BullMQ prefix, drives them over keep-alive connections (autocannon for the saturating phases, an
evenly paced undici client for the fixed rate), and prints a table and then one JSON line with
every figure.

Phases, in order:
  raw       plain BullMQ on the same Redis: bulk add, then one Worker with a no-op processor
  peers     Tasklane (authentication on: every request presents an API key) beside the pipeline
            a team would write by hand (bench/peers/: Fastify, one INSERT and queue.add; a BullMQ
            worker, two UPDATEs) and pg-boss (batch 1 and 50):
            the same echo tasks by single POSTs, one API and one worker process each, fresh
            processes every run, interleaved rounds; medians and Tasklane's per-round ratios
  create    POST /v1/tasks and POST /v1/tasks/batch (100 echo tasks each), API alone, no workers
  drain     the worker side alone, like raw BullMQ: tasks created through the batch route
  pull      the same number of tasks of a registered pull type, leased (50 a request) and
            completed over HTTP by the TypeScript client
            first, then one worker process runs them all
  rate      POST /v1/tasks at a fixed, evenly paced rate with 1 worker: pickup and end-to-end
            latency
  e2e       echo tasks created over HTTP (single and batch) and recorded completed in Postgres,
            with 1 and then 2 worker processes; throughput is completions per second in the
            window; latency at saturation; CPU seconds per 1,000 tasks per process
  e2e-notify  the e2e phase with the first worker count, run twice: without notification
            endpoints, then with an endpoint for task.completed that accepts connections and
            never answers; tasks/s and latency side by side, with their ratio
Pickup latency is runAt to startedAt, end-to-end is createdAt to finishedAt, both read from the
tasks table. CPU comes from /proc/<pid>/stat of the API, the workers and the Postgres backends
of the bench database (plus the WAL writer, background writer and checkpointer), and from Redis'
INFO cpu. Per-task CPU of the API is divided by tasks created in the window, of the workers by
tasks completed, of Postgres and Redis by the mean of the two. Peak RSS is VmHWM.

Options:
  --smoke                a few seconds of everything, for the test suite (figures meaningless)
  --phases LIST          comma list of raw,peers,create,drain,pull,webhook,rate,e2e,e2e-notify,fair (default: all)
  --duration SEC         measured window of each e2e phase (default 20)
  --warmup SEC           load before each e2e window opens (default 3)
  --create-duration SEC  each create phase (default 10)
  --rate N               tasks/s of the fixed-rate phase (default 200)
  --rate-duration SEC    fixed-rate phase (default 10)
  --workers LIST         worker process counts of the e2e phases (default 1,2)
  --concurrency N        each worker's concurrency on the default queue (default 100)
  --connections N        HTTP connections for single creates (default 50)
  --batch-connections N  HTTP connections for batch creates (default 4)
  --batch-size N         tasks per batch request (default 100)
  --raw-jobs N           jobs in the raw BullMQ phase (default 50000)
  --peer-tasks N         tasks each system runs in each peers round (default 30000)
  --peer-rounds N        rounds of the peers phase (default 6)
  --peers LIST           systems of the peers phase: tasklane,byHand,pgBoss1,pgBoss50 (default: all;
                         baseline too with --baseline)
  --baseline DIR         another checkout of Tasklane (same migrations, node_modules installed) run as
                         one more system of the peers phase: a change's before and after in one run
                         (built as this checkout is if it has tsconfig.build.json, else its .ts
                         sources run; --baseline . runs this checkout once more)
  --baseline-env NAME=VALUE  a variable for the baseline's API and worker only, over --env and
                         --node-options (repeatable): --baseline . --baseline-env
                         NODE_OPTIONS=--max-semi-space-size=16 compares two settings in one run
  --drain-tasks N        tasks in the drain phase (default 20000)
  --log-level LEVEL      LOG_LEVEL of the API and workers (default info)
  --pool-size N          TASKLANE_DB_POOL_SIZE of the API and workers (default: theirs)
  --node-options FLAGS   NODE_OPTIONS of the API and workers (default "--max-semi-space-size=8", as shipped)
  --env NAME=VALUE       set a variable for the API and workers, e.g. --env TASKLANE_HEAP_GROWTH_PERCENT=0
                         (repeatable)
  --profile DIR          run the API and workers with --cpu-prof, writing profiles to DIR
  --own-redis            start a redis-server of its own for the run (Redis CPU and commands per
                         task then count nothing of other programs using the usual Redis)
  --keep                 keep the bench database (its name is printed)
  -h, --help             this text

Environment: DATABASE_URL (a database on the server to create the bench database from;
default postgres://postgres@127.0.0.1:5432/postgres) and REDIS_URL (default redis://127.0.0.1:6379).
The figures are only as quiet as the machine: run it with nothing else busy.`

export type BenchOptions = {
  smoke: boolean
  phases: Set<string>
  durationSec: number
  warmupSec: number
  createDurationSec: number
  rate: number
  rateDurationSec: number
  workers: number[]
  concurrency: number
  connections: number
  batchConnections: number
  batchSize: number
  rawJobs: number
  peerTasks: number
  peerRounds: number
  peerSystems: string[]
  baselineRoot: string | undefined
  baselineEnv: Record<string, string>
  drainTasks: number
  logLevel: string
  poolSize: number | undefined
  nodeOptions: string | undefined
  /** Extra environment of the API and workers. */
  env: Record<string, string>
  profileDir: string | undefined
  ownRedis: boolean
  keep: boolean
  help: boolean
}

const PEER_SYSTEMS = ['tasklane', 'byHand', 'pgBoss1', 'pgBoss50']
/** The systems --peers names (all by default); `baseline` runs beside them whenever --baseline is given. */
function peerSystems (list: string | undefined, withBaseline: boolean): string[] {
  const known = withBaseline ? [...PEER_SYSTEMS, 'baseline'] : PEER_SYSTEMS
  const named = (list ?? PEER_SYSTEMS.join(',')).split(',').map((p) => p.trim())
  for (const p of named) if (!known.includes(p)) throw new Error(`--peers: unknown system "${p}" (known: ${known.join(', ')})`)
  return withBaseline && !named.includes('baseline') ? [...named, 'baseline'] : named
}
const PHASES = ['raw', 'peers', 'create', 'drain', 'pull', 'webhook', 'rate', 'e2e', 'e2e-notify', 'fair']

function positive (name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback
  const n = Number(raw)
  if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${raw}"`)
  return n
}

function pairs (name: string, list: string[] | undefined): Record<string, string> {
  return Object.fromEntries((list ?? []).map((pair) => {
    const at = pair.indexOf('=')
    if (at < 1) throw new Error(`--${name}: "${pair}" is not NAME=VALUE`)
    return [pair.slice(0, at), pair.slice(at + 1)]
  }))
}

export function parseBenchOptions (argv: string[]): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      smoke: { type: 'boolean', default: false },
      phases: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      'create-duration': { type: 'string' },
      rate: { type: 'string' },
      'rate-duration': { type: 'string' },
      workers: { type: 'string' },
      concurrency: { type: 'string' },
      connections: { type: 'string' },
      'batch-connections': { type: 'string' },
      'batch-size': { type: 'string' },
      'raw-jobs': { type: 'string' },
      'peer-tasks': { type: 'string' },
      'peer-rounds': { type: 'string' },
      peers: { type: 'string' },
      baseline: { type: 'string' },
      'baseline-env': { type: 'string', multiple: true },
      'drain-tasks': { type: 'string' },
      'log-level': { type: 'string' },
      'pool-size': { type: 'string' },
      'node-options': { type: 'string' },
      env: { type: 'string', multiple: true },
      profile: { type: 'string' },
      'own-redis': { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const smoke = values.smoke
  const phases = new Set((values.phases ?? PHASES.join(',')).split(',').map((p) => p.trim()).filter(Boolean))
  for (const phase of phases) if (!PHASES.includes(phase)) throw new Error(`--phases: unknown phase "${phase}" (known: ${PHASES.join(', ')})`)
  const workers = (values.workers ?? (smoke ? '1' : '1,2')).split(',').map((w) => positive('workers', w, 1))
  return {
    smoke,
    phases,
    durationSec: positive('duration', values.duration, smoke ? 1.5 : 20),
    warmupSec: positive('warmup', values.warmup, smoke ? 0.5 : 3),
    createDurationSec: positive('create-duration', values['create-duration'], smoke ? 1 : 10),
    rate: positive('rate', values.rate, smoke ? 50 : 200),
    rateDurationSec: positive('rate-duration', values['rate-duration'], smoke ? 1 : 10),
    workers,
    concurrency: positive('concurrency', values.concurrency, 100),
    connections: positive('connections', values.connections, smoke ? 4 : 50),
    batchConnections: positive('batch-connections', values['batch-connections'], smoke ? 1 : 4),
    batchSize: positive('batch-size', values['batch-size'], smoke ? 10 : 100),
    rawJobs: positive('raw-jobs', values['raw-jobs'], smoke ? 1_000 : 50_000),
    peerTasks: positive('peer-tasks', values['peer-tasks'], smoke ? 200 : 30_000),
    peerRounds: positive('peer-rounds', values['peer-rounds'], smoke ? 1 : 6),
    peerSystems: peerSystems(values.peers, values.baseline !== undefined),
    baselineRoot: values.baseline === undefined ? undefined : resolve(values.baseline),
    drainTasks: positive('drain-tasks', values['drain-tasks'], smoke ? 500 : 20_000),
    logLevel: values['log-level'] ?? 'info',
    poolSize: values['pool-size'] === undefined ? undefined : positive('pool-size', values['pool-size'], 10),
    // The shipped images and npm scripts run with this; pass --node-options='' to see V8's default.
    nodeOptions: values['node-options'] ?? '--max-semi-space-size=8',
    env: pairs('env', values.env),
    baselineEnv: pairs('baseline-env', values['baseline-env']),
    profileDir: values.profile,
    ownRedis: values['own-redis'],
    keep: values.keep,
    help: values.help,
  }
}
