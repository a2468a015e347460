// The growth drill (`make soak-growth`; `--smoke` for the test suite): a backlog of finished
// tasks past retention is purged while the API creates tasks at a fixed rate, then a steady
// run with a short retention shows the tables level off. Prints a summary, then one JSON line.
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import { Registry } from 'prom-client'
import { Pool } from 'undici'
import { loadConfig } from '../services/core/config.ts'
import { createDbClient } from '../services/core/db/db-client.ts'
import { createLogger } from '../services/core/log.ts'
import { createPurger } from '../services/worker/purger.ts'
import { createDrillStack } from './bench-stack.ts'
import { percentiles } from './http-load.ts'

const { values } = parseArgs({
  options: {
    smoke: { type: 'boolean', default: false },
    seed: { type: 'string' }, rate: { type: 'string' }, 'before-sec': { type: 'string' },
    'steady-sec': { type: 'string' }, retention: { type: 'string' },
  },
})
const smoke = values.smoke!
const SEED = Number(values.seed ?? (smoke ? 2_000 : 1_000_000))
const RATE = Number(values.rate ?? (smoke ? 20 : 200))
const BEFORE_SEC = Number(values['before-sec'] ?? (smoke ? 2 : 20))
const STEADY_SEC = Number(values['steady-sec'] ?? (smoke ? 6 : 240))
const RETENTION = values.retention ?? (smoke ? '2s' : '30s')
const progress = (m: string): void => { process.stderr.write(`growth: ${m}\n`) }

// The worker runs the tasks; the purges are run here, so they can be timed.
const stack = await createDrillStack({ TASKLANE_PURGE_INTERVAL_MS: '0' })
const db = createDbClient(stack.databaseUrl, { max: 4, applicationName: 'tasklane-growth' })
const lock = createDbClient(stack.databaseUrl, { max: 1, applicationName: 'tasklane-growth-lock' })
const config = loadConfig({ DATABASE_URL: stack.databaseUrl, TASKLANE_RETENTION_COMPLETED: RETENTION, TASKLANE_RETENTION_FAILED: RETENTION, TASKLANE_RETENTION_CANCELLED: RETENTION, LOG_LEVEL: 'warn' })
const purger = createPurger({ sql: db.sql, db: db.db, lockSql: lock.sql, config, registry: new Registry(), log: createLogger(config, { service: 'growth' }) })

type Sample = { at: number, latencyMs: number }
/** Creates tasks at an even rate until stop(); each request's start time and latency. */
function pacedCreates (url: string) {
  const pool = new Pool(new URL(url).origin, { connections: 20, pipelining: 1 })
  const samples: Sample[] = []
  const inFlight = new Set<Promise<void>>()
  let stopped = false
  let errors = 0
  const body = JSON.stringify({ type: 'echo', payload: { n: 1 } })
  const loop = (async () => {
    const start = performance.now()
    let sent = 0
    while (!stopped) {
      const due = Math.floor(((performance.now() - start) / 1000) * RATE)
      while (sent < due) {
        sent++
        const began = performance.now()
        const p = pool.request({ path: '/v1/tasks', method: 'POST', headers: { 'content-type': 'application/json' }, body })
          .then(async (res) => { await res.body.dump(); if (res.statusCode >= 300) errors++; samples.push({ at: began, latencyMs: performance.now() - began }) },
            () => { errors++ })
          .finally(() => inFlight.delete(p))
        inFlight.add(p)
      }
      await sleep(1)
    }
  })()
  return {
    samples,
    get errors () { return errors },
    async stop () { stopped = true; await loop; await Promise.all(inFlight); await pool.close() },
  }
}
const p99Between = (s: Sample[], from: number, to: number) => percentiles(s.filter((x) => x.at >= from && x.at < to).map((x) => x.latencyMs)).p99

async function sizes (): Promise<{ tableBytes: number, indexBytes: number, liveTasks: number }> {
  const [row] = await stack.sql<{ tableBytes: number, indexBytes: number, liveTasks: number }[]>`
    select sum(pg_table_size(c.oid))::float8 as "tableBytes", sum(pg_indexes_size(c.oid))::float8 as "indexBytes",
           (select count(*)::float8 from tasks) as "liveTasks"
    from pg_class c where c.relname in ('tasks', 'task_attempts', 'task_counts') and c.relkind = 'r'`
  return row!
}
const mb = (b: number): number => Math.round((b / 2 ** 20) * 10) / 10

/** `count` completed tasks with one attempt each, finished a day ago, in statements of 100,000. */
async function seed (count: number): Promise<void> {
  for (let done = 0; done < count; done += 100_000) {
    const n = Math.min(100_000, count - done)
    await stack.sql.unsafe(`
      with made as (
        insert into tasks (id, tenant, type, queue, status, priority, payload, result, max_attempts, backoff, timeout_ms, run_at, created_at, updated_at, started_at, finished_at, attempts)
        select (substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-7' || substr(r, 1, 3) || '-8' || substr(r, 4, 3) || '-' || substr(r, 7, 12))::uuid,
               'default', 'echo', 'default', 'completed', 'normal', '{"n":1}', '{"n":1}', 3, '{"type":"exponential","delayMs":1000}', 30000,
               at, at, at, at, at + interval '5 milliseconds', 1
        from (select at, lpad(to_hex((extract(epoch from at) * 1000)::bigint), 12, '0') as h, md5(random()::text) as r
              from (select now() - interval '1 day' - (${done} + i) * interval '1 millisecond' as at from generate_series(1, ${n}) i) a) b
        returning id, started_at
      )
      insert into task_attempts (task_id, attempt, worker_id, started_at, finished_at, outcome, duration_ms)
      select id, 1, 'seed', started_at, started_at + interval '5 milliseconds', 'completed', 5 from made`)
    progress(`seeded ${done + n}`)
  }
  await stack.sql`vacuum analyze tasks`
  await stack.sql`vacuum analyze task_attempts`
}

let failed = false
try {
  const prefix = stack.newPrefix()
  const api = await stack.startApi(prefix)
  await stack.startWorker(prefix, 0, 50)
  const apiUrl = `http://127.0.0.1:${api.port}`

  progress(`seeding ${SEED} finished tasks past retention`)
  await seed(SEED)
  const seeded = await sizes()

  progress(`creating at ${RATE}/s: ${BEFORE_SEC} s before the purge, then during it`)
  const load = pacedCreates(apiUrl)
  await sleep(BEFORE_SEC * 1000)
  const purgeStart = performance.now()
  let purged = 0
  for (;;) {
    const report = await purger.runOnce()
    purged += report ? report.purged.completed + report.purged.failed + report.purged.cancelled : 0
    if (report?.caughtUp) break
  }
  const purgeEnd = performance.now()
  await sleep(1000)
  await load.stop()
  const purgeSec = (purgeEnd - purgeStart) / 1000
  const purge = {
    seeded: SEED, purged, seconds: Math.round(purgeSec * 10) / 10, rowsPerSec: Math.round(purged / purgeSec),
    createP99MsBefore: p99Between(load.samples, 0, purgeStart), createP99MsDuring: p99Between(load.samples, purgeStart, purgeEnd),
    createErrors: load.errors, sizeMbBeforeSeedPurge: { table: mb(seeded.tableBytes), indexes: mb(seeded.indexBytes) },
  }
  progress(`purged ${purged} rows in ${purge.seconds} s`)

  // The steady run starts from empty files, so the size it reaches is retention's doing alone.
  await stack.sql`truncate task_attempts, tasks, task_counts cascade`
  progress(`steady run: ${STEADY_SEC} s at ${RATE}/s, retention ${RETENTION}, a purge pass every 5 s`)
  const steadyLoad = pacedCreates(apiUrl)
  const samples: { sec: number, tableMb: number, indexMb: number, tasks: number }[] = []
  const t0 = performance.now()
  let nextSample = 0
  while ((performance.now() - t0) / 1000 < STEADY_SEC) {
    await purger.runOnce()
    const sec = (performance.now() - t0) / 1000
    if (sec >= nextSample) {
      const s = await sizes()
      samples.push({ sec: Math.round(sec), tableMb: mb(s.tableBytes), indexMb: mb(s.indexBytes), tasks: s.liveTasks })
      nextSample += Math.max(5, STEADY_SEC / 12)
    }
    await sleep(smoke ? 500 : 5_000)
  }
  await steadyLoad.stop()
  const end = await sizes()
  samples.push({ sec: Math.round((performance.now() - t0) / 1000), tableMb: mb(end.tableBytes), indexMb: mb(end.indexBytes), tasks: end.liveTasks })
  const half = samples.find((s) => s.sec >= STEADY_SEC / 2) ?? samples[0]!
  const result = { drill: 'growth', mode: smoke ? 'smoke' : 'full', rate: RATE, retention: RETENTION, purge, steady: { samples, createP99Ms: percentiles(steadyLoad.samples.map((s) => s.latencyMs)).p99 } }
  process.stdout.write([
    `Purge: ${purged} of ${SEED} finished tasks (with their attempts) in ${purge.seconds} s = ${purge.rowsPerSec} tasks/s, while creating ${RATE} tasks/s`,
    `Create p99: ${purge.createP99MsBefore} ms before the purge, ${purge.createP99MsDuring} ms during it (${load.errors} errors)`,
    `Steady run, retention ${RETENTION}: tasks+attempts+counts ${samples[0]!.tableMb} MB table / ${samples[0]!.indexMb} MB indexes at start, ` +
      `${half.tableMb} / ${half.indexMb} MB at ${half.sec} s, ${mb(end.tableBytes)} / ${mb(end.indexBytes)} MB at the end (${end.liveTasks} tasks kept)`,
    `Samples (s: table MB / index MB / tasks): ${samples.map((s) => `${s.sec}: ${s.tableMb}/${s.indexMb}/${s.tasks}`).join(', ')}`,
    '', JSON.stringify(result), '',
  ].join('\n'))
} catch (err) {
  failed = true
  progress(`failed: ${(err as Error).stack ?? String(err)} (service logs in ${stack.logDir})`)
} finally {
  await Promise.all([db.close(), lock.close()])
  await stack.close()
}
process.exit(failed ? 1 : 0)
