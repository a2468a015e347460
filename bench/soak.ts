// The soak test's entry point: `make soak` (20 minutes) or `node bench/soak.ts --help`.
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Pool } from 'undici'
import { createDrillStack } from './bench-stack.ts'
import { rssMb } from './proc-stats.ts'
import { judgeFlat, judgePlateau, type Series } from './soak-verdict.ts'
import { ensureIndexStats, formatIndexLine, formatIndexTable, sampleIndexes, type IndexSample } from './index-stats.ts'
import { watchVacuums } from './vacuum-watch.ts'
import { CHURNED_TABLES } from '../services/worker/table-vacuum.ts'

const HELP = `Usage: node bench/soak.ts [options]      (make soak runs it with the defaults)

Runs the API and one worker process (as make bench does: a fresh database and BullMQ prefix on
the local Postgres and Redis) under a fixed, evenly paced rate of POST /v1/tasks (sleep tasks
of 10 ms) for a long time. Like a client that collects its results, it deletes each task
(DELETE /v1/tasks/{id}) a few seconds after it completed, so at a steady rate the tasks table
should neither grow nor bloat. Every sample it prints the RSS of the API and the worker, Redis'
memory, the tasks table's rows and bytes on disk (the sum, then its heap, its indexes and the
attempts table with its indexes, each judged), and, not judged, the dead tuples in tasks, the
most tasks accepted and not yet deleted since the last sample (an index keeps the size of the
most entries it held, so a moment the deletes fall behind grows it for good) and the backlog
(queued and running); under each sample, the size of each index of tasks and the tasks table's
vacuums since the last sample, the longest gap between two and the most dead tuples seen. At the
end it prints, per index of the churned tables, its size first, at the end of the warm-up, last
and at most, with its B-tree leaf and deleted pages or GIN pending pages; then it says, for each
figure, whether it is flat after the warm-up (its trend over the later samples rises by less than
the tolerance; for the tasks table, its indexes and the attempts, which are high-water marks of
the entries held between two vacuums, whether the last third of the run's samples rises by less
than the tolerance over the middle third), checks that every accepted task completed, and exits 1
if not.

Options:
  --duration TIME   how long the load runs: 20m, 90s or seconds (default 20m)
  --rate N          tasks created per second (default 100)
  --sample TIME     time between samples (default 1m)
  --warmup TIME     samples before this are not judged (default: a fifth of the duration)
  --tolerance PCT   growth over the judged window, in % of the mean, still called flat (default 15)
  --concurrency N   the worker's concurrency (default 50)
  --smoke           20 s at 50/s sampled every 2 s, for the test suite: figures printed, flatness not judged
  -h, --help        this text

Environment: DATABASE_URL and REDIS_URL as for make bench; TASKLANE_VACUUM_CHECK_INTERVAL_MS, if set,
is passed to the worker.`

function seconds (name: string, raw: string): number {
  const match = /^(\d+(?:\.\d+)?)(s|m|h)?$/.exec(raw.trim())
  if (!match) throw new Error(`--${name}: "${raw}" is not a duration like 20m, 90s or 30`)
  return Number(match[1]) * ({ s: 1, m: 60, h: 3600 }[match[2] as 's' | 'm' | 'h'] ?? 1)
}

function parseOptions (argv: string[]) {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      duration: { type: 'string' }, rate: { type: 'string' }, sample: { type: 'string' }, warmup: { type: 'string' },
      tolerance: { type: 'string' }, concurrency: { type: 'string' },
      smoke: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h', default: false },
    },
  })
  const smoke = values.smoke
  const durationSec = seconds('duration', values.duration ?? (smoke ? '20s' : '20m'))
  const number = (name: string, raw: string | undefined, fallback: number) => {
    const n = raw === undefined ? fallback : Number(raw)
    if (!Number.isFinite(n) || n <= 0) throw new Error(`--${name} must be a positive number, got "${raw}"`)
    return n
  }
  return {
    smoke,
    help: values.help,
    durationSec,
    rate: number('rate', values.rate, smoke ? 50 : 100),
    sampleSec: seconds('sample', values.sample ?? (smoke ? '2s' : '1m')),
    warmupSec: values.warmup === undefined ? durationSec / 5 : seconds('warmup', values.warmup),
    tolerancePercent: number('tolerance', values.tolerance, 15),
    concurrency: number('concurrency', values.concurrency, 50),
  }
}

let options: ReturnType<typeof parseOptions>
try {
  options = parseOptions(process.argv.slice(2))
} catch (err) {
  process.stderr.write(`soak: ${(err as Error).message}\n`)
  process.exit(2)
}
if (options.help) {
  process.stdout.write(`${HELP}\n`)
  process.exit(0)
}

const print = (line: string): void => { process.stdout.write(`${line}\n`) }
// As the images ship them; the creation limit would cap the rate at the tenant's quota.
const stack = await createDrillStack({
  TASKLANE_RATE_LIMIT_MAX: '0',
  NODE_OPTIONS: '--max-semi-space-size=8',
  // To compare vacuum cadences in one run of two soaks side by side.
  ...(process.env.TASKLANE_VACUUM_CHECK_INTERVAL_MS ? { TASKLANE_VACUUM_CHECK_INTERVAL_MS: process.env.TASKLANE_VACUUM_CHECK_INTERVAL_MS } : {}),
})
let ok = false
try {
  await ensureIndexStats(stack.sql)
  const prefix = stack.newPrefix()
  const api = await stack.startApi(prefix)
  const worker = await stack.startWorker(prefix, 0, options.concurrency)
  const pool = new Pool(`http://127.0.0.1:${api.port}`, { connections: 20 })
  const accepted = new Set<string>()
  const deleted = new Set<string>()
  const answers = new Map<string, number>()
  const count = (what: string) => answers.set(what, (answers.get(what) ?? 0) + 1)
  const inFlight = new Set<Promise<void>>()
  const track = (p: Promise<void>) => { inFlight.add(p); void p.finally(() => inFlight.delete(p)) }
  const body = JSON.stringify({ type: 'sleep', payload: { ms: 10 } })

  function create (): void {
    track(pool.request({ path: '/v1/tasks', method: 'POST', headers: { 'content-type': 'application/json' }, body })
      .then(async (res) => {
        count(`create ${res.statusCode}`)
        if (res.statusCode === 202) accepted.add(((await res.body.json()) as { id: string }).id)
        else await res.body.dump()
      }, () => { count('create error') }))
  }

  /** Deletes, through the API, what completed more than two seconds ago. */
  async function collect (): Promise<void> {
    const done = await stack.sql<{ id: string }[]>`
      select id from tasks where status = 'completed' and finished_at < now() - interval '2 seconds' limit 5000`
    for (let i = 0; i < done.length; i += 50) {
      await Promise.all(done.slice(i, i + 50).map(async ({ id }) => {
        const res = await pool.request({ path: `/v1/tasks/${id}`, method: 'DELETE' })
        await res.body.dump()
        if (res.statusCode === 204) deleted.add(id)
        else count(`delete ${res.statusCode}`)
      }))
    }
  }

  // The tasks table is judged by its parts as well as whole, so that growth can be told to
  // be the heap's, its indexes' or the attempts'.
  const series: Series[] = [
    { name: 'api rss', unit: 'MiB', values: [] },
    { name: 'worker rss', unit: 'MiB', values: [] },
    { name: 'redis memory', unit: 'MiB', values: [] },
    { name: 'tasks rows', unit: '', values: [] },
    { name: 'tasks table', unit: 'MiB', values: [] },
    { name: 'tasks heap', unit: 'MiB', values: [] },
    { name: 'tasks indexes', unit: 'MiB', values: [] },
    { name: 'attempts', unit: 'MiB', values: [] },
  ]
  // Not judged: the work not yet done, so that a growing table can be told apart from a
  // worker that falls behind; the dead tuples in tasks, which come and go with each vacuum; and
  // the most tasks accepted and not yet deleted since the last sample, because an index keeps
  // the size of the most entries it ever held: a moment this client falls behind on its deletes
  // (a loaded host) grows the table for good, which a sample of the rows alone would not show.
  let backlog = 0
  let undeletedPeak = 0
  // Each index of the churned tables, every sample: which index grows, and whether with deleted
  // pages not yet recycled or with emptier leaves.
  const indexHistory: IndexSample[][] = []
  const vacuumWatch = watchVacuums(stack.sql, 'tasks')
  const started = performance.now()
  const mib = (bytes: number) => Math.round(bytes / 2 ** 20 * 100) / 100
  async function sample (): Promise<void> {
    // The statistics reach pg_stat_user_tables asynchronously, and a snapshot of them lasts the transaction.
    await stack.sql`select pg_stat_clear_snapshot()`
    const [table] = await stack.sql<{ rows: number, backlog: number, heap: number, indexes: number, attempts: number, dead: number }[]>`
      select (select count(*)::int from tasks) as rows,
        (select count(*)::int from tasks where status in ('queued', 'running')) as backlog,
        pg_table_size('tasks')::float8 as heap,
        pg_indexes_size('tasks')::float8 as indexes,
        pg_total_relation_size('task_attempts')::float8 as attempts,
        (select n_dead_tup::int from pg_stat_user_tables where relid = 'tasks'::regclass) as dead`
    const redisMb = Number(/^used_memory_rss:(\d+)/m.exec(await stack.redis.info('memory'))?.[1] ?? 0) / 2 ** 20
    const { rows, heap, indexes, attempts, dead } = table!
    const figures = [rssMb(api.pid) ?? 0, rssMb(worker.pid) ?? 0, Math.round(redisMb), rows, mib(heap + indexes + attempts), mib(heap), mib(indexes), mib(attempts)]
    figures.forEach((v, i) => series[i]!.values.push(v))
    backlog = table!.backlog
    const at = Math.round((performance.now() - started) / 1000)
    print(`[${String(Math.floor(at / 60)).padStart(2, '0')}:${String(at % 60).padStart(2, '0')}] ` +
      series.map((s, i) => `${s.name} ${figures[i]}${s.unit ? ` ${s.unit}` : ''}`).join(' | ') +
      ` | tasks dead tuples ${dead} | undeleted peak ${undeletedPeak} | backlog ${backlog} | accepted ${accepted.size} deleted ${deleted.size}`)
    undeletedPeak = accepted.size - deleted.size
    const perIndex = await sampleIndexes(stack.sql, CHURNED_TABLES)
    indexHistory.push(perIndex)
    const v = vacuumWatch.take()
    print(`${formatIndexLine('tasks', perIndex)} | tasks vacuums ${v.vacuums}, longest gap ${v.longestGapSec} s, most dead tuples ${v.mostDead}`)
  }

  print(`soak: ${options.rate} tasks/s for ${options.durationSec} s, a sample every ${options.sampleSec} s, warm-up ${options.warmupSec} s (api pid ${api.pid}, worker pid ${worker.pid})`)
  await sample()
  const endAt = started + options.durationSec * 1000
  let sent = 0
  let nextSample = started + options.sampleSec * 1000
  let nextCollect = started + 1000
  let collecting: Promise<void> | undefined
  for (;;) {
    const now = performance.now()
    if (now >= endAt) break
    // Send what is due by now, so a late timer catches up instead of lowering the rate.
    const due = Math.floor(((now - started) / 1000) * options.rate)
    while (sent < due) { create(); sent++ }
    if (now >= nextCollect && !collecting) {
      nextCollect = now + 1000
      collecting = collect().catch((err) => { count(`collect error ${(err as Error).message}`) }).finally(() => { collecting = undefined })
    }
    if (now >= nextSample) { nextSample += options.sampleSec * 1000; await sample() }
    undeletedPeak = Math.max(undeletedPeak, accepted.size - deleted.size)
    await sleep(5)
  }
  await Promise.all(inFlight)
  await collecting
  await vacuumWatch.stop()
  // The backlog drains: every accepted task must end completed (and then be collected).
  const drainUntil = Date.now() + 60_000
  let pending = 0
  do {
    await collect()
    const [row] = await stack.sql<{ n: number }[]>`select count(*)::int as n from tasks where status <> 'completed'`
    pending = row!.n
    if (pending > 0) await sleep(500)
  } while ((pending > 0 || deleted.size < accepted.size) && Date.now() < drainUntil)
  const missing = [...accepted].filter((id) => !deleted.has(id)).length
  await pool.close()

  print(`answers: ${[...answers].map(([k, n]) => `${k} x${n}`).join(', ')}`)
  print(`tasks: accepted ${accepted.size}, completed and deleted ${deleted.size}, not completed ${missing}`)
  const warmupSamples = Math.min(Math.ceil(options.warmupSec / options.sampleSec), series[0]!.values.length - 2)
  print('per index of the churned tables (KiB at the first sample under load, the end of the warm-up, the last sample, the')
  print('largest; trend after warm-up, ! past the tolerance; leaf and deleted pages of 8 KiB; not judged):')
  for (const line of formatIndexTable(indexHistory, Math.max(warmupSamples, 0), options.tolerancePercent)) print(`  ${line}`)
  // Indexes (and the totals that hold them) are high-water marks of the entries held between two
  // vacuums: judged on whether they have levelled (last third against the middle one), with the
  // trend after warm-up printed beside; the rest on their trend.
  const highWater = new Set(['tasks table', 'tasks indexes', 'attempts'])
  const signed = (n: number) => `${n >= 0 ? '+' : ''}${n}%`
  const verdicts = series.map((s) => {
    const trend = judgeFlat(s, Math.max(warmupSamples, 0), options.tolerancePercent)
    if (!highWater.has(s.name)) {
      print(`${trend.flat ? 'flat   ' : 'GROWING'} ${s.name}: ${trend.first} -> ${trend.last}, trend ${signed(trend.growthPercent)} after warm-up (tolerance ${options.tolerancePercent}%)`)
      return trend
    }
    const plateau = judgePlateau(s, options.tolerancePercent)
    print(`${plateau.flat ? 'flat   ' : 'GROWING'} ${s.name}: ${trend.first} -> ${trend.last}, last third ${signed(plateau.growthPercent)} over the middle third (tolerance ${options.tolerancePercent}%; trend after warm-up ${signed(trend.growthPercent)}, a high-water mark: judged on its level)`)
    return plateau
  })
  const flat = verdicts.every((v) => v.flat)
  const clean = missing === 0 && sent === accepted.size
  print(`verdict: ${clean ? 'every task accepted and completed' : 'TASKS NOT ACCEPTED OR NOT COMPLETED'}; ` +
    `${flat ? 'every figure flat after warm-up' : 'SOME FIGURE GROWS'}${options.smoke ? ' (smoke: flatness not judged)' : ''}`)
  ok = clean && (flat || options.smoke)
} catch (err) {
  process.stderr.write(`soak: failed: ${(err as Error).message}\n`)
} finally {
  await stack.close()
}
process.exit(ok ? 0 : 1)
