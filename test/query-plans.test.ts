import { writeFileSync } from 'node:fs'
import { drizzle } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import t from 'tap'
import * as schema from '../services/core/db/schema.ts'
import type { Db } from '../services/core/db/db-client.ts'
import { createTaskControlRepository } from '../services/core/tasks/task-control-repository.ts'
import { createTaskPurgeRepository } from '../services/core/tasks/task-purge-repository.ts'
import { createTaskRecoveryRepository, FIRST_ID } from '../services/core/tasks/task-recovery-repository.ts'
import { createTaskRepository } from '../services/core/tasks/task-repository.ts'
import { firstIdAt } from '../services/core/ids.ts'
import { startHarness } from './helpers/harness.ts'

// The plans of the list, stats, repair and purge queries on a table big enough that the
// planner would rather scan it whole than use a wrong index. The statements are the
// repositories' own, captured as they run. With QUERY_PLANS_NOTE=<file>, the plans are
// written there (docs/query-plans.md is made that way).
const ROWS = Number(process.env.QUERY_PLANS_ROWS ?? 200_000)
const DAY = 86_400_000

type PlanNode = { 'Node Type': string, 'Relation Name'?: string, 'Index Name'?: string, Plans?: PlanNode[] }
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)]

t.test('every list, stats, repair and purge query uses an index in its order, on a table of many rows', async (t) => {
  const h = await startHarness(t)
  // Ids are UUIDv7 of their creation time, spread over 40 days; 95% of the tasks are finished.
  await h.sql.unsafe(`
    insert into tasks (id, tenant, type, queue, status, priority, payload, max_attempts, backoff, timeout_ms, run_at, created_at, updated_at, finished_at, attempts)
    select (substr(x.h, 1, 8) || '-' || substr(x.h, 9, 4) || '-7' || substr(x.r, 1, 3) || '-8' || substr(x.r, 4, 3) || '-' || substr(x.r, 7, 12))::uuid,
           case when i % 10 = 0 then 'other' else 'big' end, x.type, x.queue, x.status, 'normal', '{}', 3,
           '{"type":"fixed","delayMs":0}', 1000, x.at, x.at, x.at,
           case when x.status in ('completed', 'failed', 'cancelled') then x.at + interval '1 second' end, 1
    from generate_series(1, ${ROWS}) i
    cross join lateral (select now() - (${ROWS} - i) * interval '1 millisecond' * ${40 * DAY / ROWS} as at) t
    cross join lateral (select lpad(to_hex((extract(epoch from t.at) * 1000)::bigint), 12, '0') as h, md5(i::text) as r,
      t.at, (array['echo', 'sleep', 'http'])[1 + i % 3] as type, case when i % 3 = 2 then 'http' else 'default' end as queue,
      case when i % 100 < 95 then 'completed' when i % 100 < 97 then 'failed' when i % 100 < 98 then 'cancelled'
           when i % 100 < 99 then 'queued' else 'running' end as status) x`)
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

  const cases: { name: string, run: () => Promise<unknown>, ordered: boolean }[] = [
    { name: 'list: newest first', run: () => tasks.list('big', { limit: 51 }), ordered: true },
    { name: 'list: status=failed', run: () => tasks.list('big', { status: 'failed', limit: 51 }), ordered: true },
    { name: 'list: type=http', run: () => tasks.list('big', { type: 'http', limit: 51 }), ordered: true },
    { name: 'list: queue=http', run: () => tasks.list('big', { queue: 'http', limit: 51 }), ordered: true },
    { name: 'list: createdBefore a day ago', run: () => tasks.list('big', { createdBefore: dayAgo, limit: 51 }), ordered: true },
    { name: 'list: createdAfter a day ago', run: () => tasks.list('big', { createdAfter: dayAgo, limit: 51 }), ordered: true },
    { name: 'list: next page (cursor)', run: () => tasks.list('big', { beforeId: firstIdAt(Date.now() - 20 * DAY), limit: 51 }), ordered: true },
    { name: 'list: status=queued, createdBefore', run: () => tasks.list('big', { status: 'queued', createdBefore: dayAgo, limit: 51 }), ordered: true },
    { name: 'idempotency key lookup', run: () => tasks.findByIdempotencyKey('other', some!.key), ordered: false },
    { name: 'stats (GET /v1/stats)', run: () => control.countByStatusAndType('big'), ordered: false },
    { name: 'reconciler: queued untouched', run: () => recovery.listUntouched('queued', 10_000, FIRST_ID, 500), ordered: true },
    { name: 'reconciler: running untouched', run: () => recovery.listUntouched('running', 30_000, FIRST_ID, 500), ordered: true },
    { name: 'purger: finished groups', run: () => purge.finishedGroups(), ordered: false },
  ]
  const note: string[] = []
  for (const c of cases) {
    captured.length = 0
    await c.run()
    const { query, params } = captured.at(-1)!
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
      '(two tenants, 40 days of UUIDv7 ids, 95% completed); the test asserts the same plans have no Seq Scan on tasks and, for the ordered ' +
      'queries, no Sort.\n\n' + note.join('\n'))
  }
})
