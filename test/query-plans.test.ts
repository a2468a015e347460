import { writeFileSync } from 'node:fs'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import t from 'tap'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import * as schema from '../services/core/db/schema.ts'
import type { Db } from '../services/core/db/db-client.ts'
import { createTaskControlRepository } from '../services/core/tasks/task-control-repository.ts'
import { createTaskPurgeRepository } from '../services/core/tasks/task-purge-repository.ts'
import { createTaskRecoveryRepository, FIRST_ID } from '../services/core/tasks/task-recovery-repository.ts'
import { createTaskRepository } from '../services/core/tasks/task-repository.ts'
import { createTaskTransitions } from '../services/core/tasks/transitions.ts'
import { createAdmissionLoop } from '../services/core/fairness/admission-loop.ts'
import { createDispatchWindow } from '../services/core/fairness/dispatch-window.ts'
import { firstIdAt } from '../services/core/ids.ts'
import { startHarness } from './helpers/harness.ts'
import { testLogger } from './helpers/test-config.ts'

// The plans of the list, stats, repair, purge and fair-sharing queries on a table big enough
// that the planner would rather scan it whole than use a wrong index. The statements are the
// repositories' and the admission loop's own, captured as they run. With
// QUERY_PLANS_NOTE=<file>, the plans are written there (docs/query-plans.md is made that way).
const ROWS = Number(process.env.QUERY_PLANS_ROWS ?? 200_000)
const DAY = 86_400_000

type PlanNode = { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, Plans?: PlanNode[] }
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)]

t.test('every list, stats, repair, purge and admission query uses an index in its order, on a table of many rows', async (t) => {
  const h = await startHarness(t)
  // Ids are UUIDv7 of their creation time, spread over 40 days; 95% of the tasks are completed,
  // 1% failed, 1% cancelled. Of the 3% unfinished, two thirds are queued but held by fair
  // sharing (a flood of two tenants in both queues, of mixed priorities, waiting for the
  // admission loop) and the rest are dispatched, half queued and half running.
  await h.sql.unsafe(`
    insert into tasks (id, tenant, type, queue, status, held, priority, payload, max_attempts, backoff, timeout_ms, run_at, created_at, updated_at, finished_at, attempts)
    select (substr(x.h, 1, 8) || '-' || substr(x.h, 9, 4) || '-7' || substr(x.r, 1, 3) || '-8' || substr(x.r, 4, 3) || '-' || substr(x.r, 7, 12))::uuid,
           case when i % 10 = 0 or (x.held and (i / 100) % 4 = 0) then 'other' else 'big' end, x.type, x.queue, x.status, x.held,
           (array['normal', 'normal', 'normal', 'normal', 'high', 'low', 'critical'])[1 + i % 7], '{}', 3,
           '{"type":"fixed","delayMs":0}', 1000, x.at, x.at, x.at,
           case when x.status in ('completed', 'failed', 'cancelled') then x.at + interval '1 second' end, 1
    from generate_series(1, ${ROWS}) i
    cross join lateral (select now() - (${ROWS} - i) * interval '1 millisecond' * ${40 * DAY / ROWS} as at) t
    cross join lateral (select lpad(to_hex((extract(epoch from t.at) * 1000)::bigint), 12, '0') as h, md5(i::text) as r,
      t.at, (array['echo', 'sleep', 'http'])[1 + i % 3] as type, case when i % 3 = 2 then 'http' else 'default' end as queue,
      case when i % 100 < 95 then 'completed' when i % 100 = 95 then 'failed' when i % 100 = 96 then 'cancelled'
           when i % 100 < 99 or i % 200 < 100 then 'queued' else 'running' end as status,
      i % 100 in (97, 98) as held) x`)
  await h.sql`update tasks set idempotency_key = 'k' || id where tenant = 'other' and id in (select id from tasks where tenant = 'other' limit 1000)`
  await h.sql`analyze tasks`
  await h.sql`analyze task_counts`

  const captured: { query: string, params: unknown[] }[] = []
  const client = postgres(h.config.DATABASE_URL, { max: 1, onnotice: () => {}, debug: (_c, query, params) => { captured.push({ query, params }) } })
  t.teardown(() => client.end())
  const db = drizzle(client, { schema }) as unknown as Db
  const tasks = createTaskRepository(db)
  const control = createTaskControlRepository(db)
  const recovery = createTaskRecoveryRepository(client)
  const purge = createTaskPurgeRepository(client)
  const dayAgo = new Date(Date.now() - DAY)
  const [some] = await h.sql<{ id: string, key: string }[]>`select id, idempotency_key as key from tasks where idempotency_key is not null limit 1`

  type Statement = { query: string, params: unknown[] }
  /** The last statement `run` sent through the capturing client. */
  const last = (run: () => Promise<unknown>) => async (): Promise<Statement> => {
    captured.length = 0
    await run()
    return captured.at(-1)!
  }
  // Fair sharing's statements, from one real pass of an admission loop reading through the
  // capturing client: its held-pairs scan, an admit per queue (which really dispatches held
  // tasks) and the counter repair. The advisory lock goes through a client of its own.
  const log = testLogger(h.config, 'tasklane-api')
  const lockSql = postgres(h.config.DATABASE_URL, { max: 1, onnotice: () => {} })
  t.teardown(() => lockSql.end())
  const transitions = createTaskTransitions(client, { maxLostAttempts: h.config.TASKLANE_MAX_LOST_ATTEMPTS })
  const admission = createAdmissionLoop({
    sql: client, lockSql, subscriber: new Redis(h.config.REDIS_URL, { lazyConnect: true }), transitions,
    window: createDispatchWindow({ redis: h.deps.redis, prefix: h.config.TASKLANE_QUEUE_PREFIX, log }),
    limits: h.deps.tenantLimits, queues: h.deps.queues, config: h.config, registry: new Registry(), log,
  })
  t.teardown(() => admission.stop())
  let pass: Promise<Statement[]> | undefined
  const fromPass = (what: string, fragment: string) => async (): Promise<Statement> => {
    pass ??= (async () => {
      captured.length = 0
      const report = await admission.runOnce()
      t.ok(report.active && report.admitted > 0, 'the admission pass ran and dispatched held tasks')
      return [...captured]
    })()
    const found = (await pass).find((s) => s.query.includes(fragment))
    if (!found) throw new Error(`the admission pass sent no statement with "${fragment}" (${what})`)
    return found
  }
  const dispatchedQueued = (await h.sql<{ id: string }[]>`select id from tasks where status = 'queued' and not held limit 20`).map((r) => r.id)

  const cases: { name: string, statement: () => Promise<Statement>, ordered: boolean }[] = [
    { name: 'list: newest first', statement: last(() => tasks.list('big', { limit: 51 })), ordered: true },
    { name: 'list: status=failed', statement: last(() => tasks.list('big', { status: 'failed', limit: 51 })), ordered: true },
    { name: 'list: type=http', statement: last(() => tasks.list('big', { type: 'http', limit: 51 })), ordered: true },
    { name: 'list: queue=http', statement: last(() => tasks.list('big', { queue: 'http', limit: 51 })), ordered: true },
    { name: 'list: createdBefore a day ago', statement: last(() => tasks.list('big', { createdBefore: dayAgo, limit: 51 })), ordered: true },
    { name: 'list: createdAfter a day ago', statement: last(() => tasks.list('big', { createdAfter: dayAgo, limit: 51 })), ordered: true },
    { name: 'list: next page (cursor)', statement: last(() => tasks.list('big', { beforeId: firstIdAt(Date.now() - 20 * DAY), limit: 51 })), ordered: true },
    { name: 'list: status=queued, createdBefore', statement: last(() => tasks.list('big', { status: 'queued', createdBefore: dayAgo, limit: 51 })), ordered: true },
    { name: 'idempotency key lookup', statement: last(() => tasks.findByIdempotencyKey('other', some!.key)), ordered: false },
    { name: 'stats (GET /v1/stats)', statement: last(() => control.countByStatusAndType('big')), ordered: false },
    { name: 'reconciler: queued untouched', statement: last(() => recovery.listUntouched('queued', 10_000, FIRST_ID, 500)), ordered: true },
    { name: 'reconciler: running untouched', statement: last(() => recovery.listUntouched('running', 30_000, FIRST_ID, 500)), ordered: true },
    { name: 'purger: finished groups', statement: last(() => purge.finishedGroups()), ordered: false },
    // One index probe per (queue, tenant) pair with held tasks, each counted up to a pass's take.
    { name: 'admission: held pairs', statement: fromPass('held pairs', 'with recursive pairs'), ordered: true },
    // Each tenant's quota of held tasks, highest priority then oldest first: the index's order.
    { name: 'admission: admit', statement: fromPass('admit', 'set held = false'), ordered: true },
    { name: 'admission: counter repair', statement: fromPass('counter repair', 'group by queue, tenant'), ordered: false },
    // Stored tasks that got no slot (a schedule's, released dependents), held by their ids.
    { name: 'hold (stored tasks past their window)', statement: last(() => transitions.hold(dispatchedQueued)), ordered: false },
  ]
  const note: string[] = []
  for (const c of cases) {
    const { query, params } = await c.statement()
    const [row] = await h.sql.unsafe(`explain (format json) ${query}`, params as never[])
    const plan = (row!['QUERY PLAN'] as { Plan: PlanNode }[])[0]!.Plan
    const all = nodes(plan)
    t.notOk(all.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'tasks'), `${c.name}: no Seq Scan on tasks`)
    if (c.ordered) t.notOk(all.some((n) => n['Node Type'] === 'Sort'), `${c.name}: the index gives the order (no Sort)`)
    const text = await h.sql.unsafe(`explain ${query}`, params as never[])
    note.push(`### ${c.name}\n\n\`\`\`sql\n${query.trim()}\n\`\`\`\n\n\`\`\`\n${text.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\`\n`)
  }
  // The purge statement deletes; EXPLAIN without ANALYZE plans it without running it.
  const purgeParams = ['big', 'completed', FIRST_ID, firstIdAt(Date.now() - 7 * DAY), 1000, 7 * DAY]
  captured.length = 0
  await purge.purgeChunk('nobody', 'completed', FIRST_ID, FIRST_ID, 7 * DAY, 1)
  const purgeSql = captured.at(-1)!.query
  const [pr] = await h.sql.unsafe(`explain (format json) ${purgeSql}`, purgeParams as never[])
  const purgePlan = nodes((pr!['QUERY PLAN'] as { Plan: PlanNode }[])[0]!.Plan)
  t.notOk(purgePlan.some((n) => n['Node Type'] === 'Seq Scan' && n['Relation Name'] === 'tasks'), 'purge chunk: no Seq Scan on tasks')
  t.ok(purgePlan.some((n) => n['Node Type'] === 'Limit'), 'purge chunk: a bounded index walk in id order')
  const purgeText = await h.sql.unsafe(`explain ${purgeSql}`, purgeParams as never[])
  note.push(`### purger: one chunk\n\n\`\`\`sql\n${purgeSql.trim()}\n\`\`\`\n\n\`\`\`\n${purgeText.map((r) => r['QUERY PLAN']).join('\n')}\n\`\`\`\n`)
  if (process.env.QUERY_PLANS_NOTE) {
    writeFileSync(process.env.QUERY_PLANS_NOTE, `# Query plans\n\nMade by \`QUERY_PLANS_NOTE=docs/query-plans.md tap test/query-plans.test.ts\` on a table of ${ROWS} tasks ` +
      '(two tenants, 40 days of UUIDv7 ids, 95% completed, 2% queued and held by fair sharing, 1% dispatched); the test asserts the same plans have no Seq Scan on tasks and, for the ordered ' +
      'queries, no Sort.\n\n' + note.join('\n'))
  }
})
