// A diagnostic, not a benchmark: the tasks table's row churn of the soak (insert queued, update
// running, update completed, delete two seconds later) written straight in SQL at a fixed rate,
// with the worker's own table-vacuum loop, and no API, worker or Redis: how the table's indexes
// behave under that churn, on a host too loaded to run the soak at its rate.
// node bench/index-churn-sim.ts [--rate 100] [--duration 5m] [--vacuum-interval 5000] [--setup "alter table ..."]
import { parseArgs } from 'node:util'
import { setTimeout as sleep } from 'node:timers/promises'
import postgres from 'postgres'
import { v7 as uuidv7 } from 'uuid'
import { createDrillStack } from './bench-stack.ts'
import { ensureIndexStats, formatIndexLine, formatIndexTable, sampleIndexes, type IndexSample } from './index-stats.ts'
import { watchVacuums } from './vacuum-watch.ts'
import { createTableVacuum } from '../services/worker/table-vacuum.ts'
import { createLogger } from '../services/core/log.ts'
import { Registry } from 'prom-client'

const { values } = parseArgs({ options: { rate: { type: 'string' }, duration: { type: 'string' }, 'vacuum-interval': { type: 'string' }, sample: { type: 'string' }, setup: { type: 'string' }, 'own-connection': { type: 'boolean' } } })
const rate = Number(values.rate ?? 100)
const durationSec = Number((values.duration ?? '300').replace(/m$/, '')) * (values.duration?.endsWith('m') ? 60 : 1)
const sampleSec = Number(values.sample ?? 30)
const stack = await createDrillStack()
const sql = postgres(stack.databaseUrl, { max: 10, onnotice: () => {} })
await ensureIndexStats(stack.sql)
// A variant under test, e.g. a table or index storage parameter.
if (values.setup) await stack.sql.unsafe(values.setup)
// As the worker did before its vacuum had a connection of its own: in the churn's pool, or apart.
const vacuumSql = values['own-connection'] ? postgres(stack.databaseUrl, { max: 1, onnotice: () => {} }) : sql
const vacuum = createTableVacuum({
  sql: vacuumSql,
  config: { TASKLANE_PURGE_VACUUM: 'auto', TASKLANE_VACUUM_CHECK_INTERVAL_MS: Number(values['vacuum-interval'] ?? 5000) },
  registry: new Registry(),
  log: createLogger({ LOG_LEVEL: 'silent' } as never, {}),
})
vacuum.start()
const vacuumWatch = watchVacuums(stack.sql, 'tasks')
const history: IndexSample[][] = []
const started = performance.now()
const inFlight = new Set<Promise<unknown>>()
const track = (p: Promise<unknown>) => { inFlight.add(p); void p.finally(() => inFlight.delete(p)) }

async function life (id: string): Promise<void> {
  await sql`insert into tasks (id, type, queue, status, priority, payload, max_attempts, backoff, timeout_ms, run_at)
    values (${id}, 'sleep', 'default', 'queued', 'normal', '{"ms":10}', 3, '{"type":"fixed","delayMs":1000}', 30000, now())`
  await sleep(20)
  await sql`update tasks set status = 'running', attempts = attempts + 1, started_at = now(), updated_at = now(), worker_id = 'sim', lease_id = ${uuidv7()} where id = ${id}`
  await sleep(10)
  await sql`update tasks set status = 'completed', finished_at = now(), updated_at = now(), result = '{"slept":10}', lease_id = null where id = ${id}`
  await sleep(2000)
  await sql`delete from tasks where id = ${id}`
}

async function sample (): Promise<void> {
  const [t] = await stack.sql<{ rows: number, heap: number, indexes: number }[]>`
    select (select count(*)::int from tasks) as rows, pg_table_size('tasks')::float8 as heap, pg_indexes_size('tasks')::float8 as indexes`
  const per = await sampleIndexes(stack.sql, ['tasks'])
  history.push(per)
  const at = Math.round((performance.now() - started) / 1000)
  process.stdout.write(`[${at}s] rows ${t!.rows} heap ${Math.round(t!.heap / 1024)} KiB indexes ${Math.round(t!.indexes / 1024)} KiB\n${formatIndexLine('tasks', per)} | ${JSON.stringify(vacuumWatch.take())}\n`)
}

await sample()
let sent = 0
let nextSample = started + sampleSec * 1000
for (;;) {
  const now = performance.now()
  if (now - started >= durationSec * 1000) break
  const due = Math.floor(((now - started) / 1000) * rate)
  while (sent < due) { track(life(uuidv7()).catch((e) => { process.stderr.write(`${(e as Error).message}\n`) })); sent++ }
  if (now >= nextSample) { nextSample += sampleSec * 1000; await sample() }
  await sleep(5)
}
await Promise.all(inFlight)
await sample()
for (const line of formatIndexTable(history, Math.ceil(history.length / 5), 15)) process.stdout.write(`  ${line}\n`)
await vacuum.stop()
await vacuumWatch.stop()
if (vacuumSql !== sql) await vacuumSql.end()
await sql.end()
await stack.close()
process.exit(0)
