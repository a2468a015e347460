import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'

/** Per task: heap rows written to each table, the share of updates that were HOT, and index growth. */
export type TableWrites = {
  rowsPerTask: Record<string, { inserted: number, updated: number, hotShare: number, deleted: number }>
  /** (inserts + non-HOT updates) x the table's indexes, summed: index entries written at most (partial indexes take fewer). */
  indexEntriesPerTaskAtMost: number
  indexBytesPerTask: number
}

type Snapshot = Map<string, { ins: number, upd: number, hot: number, del: number, indexes: number, indexBytes: number }>

async function snapshot (sql: postgres.Sql): Promise<Snapshot> {
  // Backends report their counters at most once a second when idle; then read a fresh view.
  await sleep(1_500)
  await sql`select pg_stat_clear_snapshot()`
  const rows = await sql<{ table: string, ins: number, upd: number, hot: number, del: number, indexes: number, indexBytes: number }[]>`
    select s.relname as table, s.n_tup_ins::float8 as ins, s.n_tup_upd::float8 as upd, s.n_tup_hot_upd::float8 as hot,
           s.n_tup_del::float8 as del, (select count(*)::int from pg_index i where i.indrelid = s.relid) as indexes,
           pg_indexes_size(s.relid)::float8 as "indexBytes"
    from pg_stat_user_tables s where s.schemaname = current_schema()`
  return new Map(rows.map((r) => [r.table, r]))
}

const round = (n: number): number => Math.round(n * 100) / 100

/** Call before the work; the returned function, after it, gives the writes per task. */
export async function measureTableWrites (sql: postgres.Sql): Promise<(tasks: number) => Promise<TableWrites>> {
  const before = await snapshot(sql)
  return async (tasks) => {
    const after = await snapshot(sql)
    const result: TableWrites = { rowsPerTask: {}, indexEntriesPerTaskAtMost: 0, indexBytesPerTask: 0 }
    for (const [table, a] of after) {
      const b = before.get(table) ?? { ins: 0, upd: 0, hot: 0, del: 0, indexes: a.indexes, indexBytes: 0 }
      const ins = a.ins - b.ins
      const upd = a.upd - b.upd
      const hot = a.hot - b.hot
      const del = a.del - b.del
      if (ins + upd + del === 0) continue
      result.rowsPerTask[table] = { inserted: round(ins / tasks), updated: round(upd / tasks), hotShare: upd > 0 ? round(hot / upd) : 0, deleted: round(del / tasks) }
      result.indexEntriesPerTaskAtMost += ((ins + upd - hot) * a.indexes) / tasks
      result.indexBytesPerTask += (a.indexBytes - b.indexBytes) / tasks
    }
    result.indexEntriesPerTaskAtMost = round(result.indexEntriesPerTaskAtMost)
    result.indexBytesPerTask = Math.round(result.indexBytesPerTask)
    return result
  }
}

export function formatTableWrites (w: TableWrites): string {
  const tables = Object.entries(w.rowsPerTask)
    .map(([t, r]) => `${t} +${r.inserted} ins, ${r.updated} upd (${Math.round(r.hotShare * 100)}% HOT)`).join('; ')
  return `Postgres writes per task: ${tables}; index entries at most ${w.indexEntriesPerTaskAtMost}, index growth ${w.indexBytesPerTask} bytes`
}
