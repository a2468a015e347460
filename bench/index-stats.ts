import type postgres from 'postgres'
import { judgeFlat } from './soak-verdict.ts'

/**
 * One index's size and, from pgstattuple, what its pages hold: a B-tree's leaf pages, the pages
 * vacuum deleted but no insert has reused yet, and how full its leaves are; a GIN index's
 * pending list (fastupdate), which only a vacuum or the list's own limit moves into the tree.
 * What tells an index that bloats (more leaves, each emptier) from one that only holds
 * deleted pages waiting to be recycled.
 */
export type IndexSample = {
  table: string
  index: string
  method: string
  bytes: number
  leafPages?: number
  deletedPages?: number
  density?: number
  pendingPages?: number
}

/** Samples every index of the given tables; needs the pgstattuple extension (see ensureIndexStats). */
export async function sampleIndexes (sql: postgres.Sql, tables: readonly string[]): Promise<IndexSample[]> {
  const indexes = await sql<{ table: string, index: string, method: string, bytes: number }[]>`
    select t.relname as table, i.relname as index, am.amname as method, pg_relation_size(i.oid)::float8 as bytes
    from pg_index x
    join pg_class t on t.oid = x.indrelid
    join pg_class i on i.oid = x.indexrelid
    join pg_am am on am.oid = i.relam
    where t.oid = any(${tables as string[]}::text[]::regclass[])
    order by t.relname, i.relname`
  const samples: IndexSample[] = []
  // One index at a time: pgstatindex refuses anything but a B-tree, pgstatginindex anything but GIN.
  for (const ix of indexes) {
    const sample: IndexSample = { ...ix }
    if (ix.method === 'btree') {
      const [b] = await sql<{ leaf: number, deleted: number, density: number }[]>`
        select leaf_pages::int as leaf, deleted_pages::int as deleted, avg_leaf_density::float8 as density
        from pgstatindex(${ix.index}::regclass)`
      Object.assign(sample, { leafPages: b!.leaf, deletedPages: b!.deleted, density: Number.isNaN(b!.density) ? undefined : b!.density })
    } else if (ix.method === 'gin') {
      const [g] = await sql<{ pending: number }[]>`select pending_pages::int as pending from pgstatginindex(${ix.index}::regclass)`
      sample.pendingPages = g!.pending
    }
    samples.push(sample)
  }
  return samples
}

export async function ensureIndexStats (sql: postgres.Sql): Promise<void> {
  await sql`create extension if not exists pgstattuple`
}

/** A short name for a sample line: the table's prefix and the `_idx` suffix dropped. */
export const shortIndexName = (s: Pick<IndexSample, 'table' | 'index'>): string =>
  s.index.replace(new RegExp(`^${s.table}_`), '').replace(/_idx$/, '')

const kib = (bytes: number): number => Math.round(bytes / 1024)

/** The sample line: each index's KiB, and deleted B-tree / pending GIN pages where there are any. */
export function formatIndexLine (table: string, samples: IndexSample[]): string {
  return `  ${table} indexes KiB: ` + samples.filter((s) => s.table === table).map((s) => {
    const extra = s.deletedPages ? ` (${s.deletedPages} del)` : s.pendingPages ? ` (${s.pendingPages} pend)` : ''
    return `${shortIndexName(s)} ${kib(s.bytes)}${extra}`
  }).join(', ')
}

/**
 * The end-of-run table: per index, its size at the first sample under load, at the end of the
 * warm-up, at the last sample and at its largest, and its trend after the warm-up as the soak
 * judges its figures; its leaf pages then and last, its deleted pages last and at most, its
 * leaf density last, and the most GIN pending pages. Not judged: it says which index grows.
 */
export function formatIndexTable (history: IndexSample[][], warmupSamples: number, tolerancePercent: number): string[] {
  const last = history.at(-1) ?? []
  const at = (i: number, key: string) => history[Math.min(i, history.length - 1)]?.find((s) => `${s.table}.${s.index}` === key)
  const rows = last.map((l) => {
    const key = `${l.table}.${l.index}`
    const all = history.map((h) => h.find((s) => `${s.table}.${s.index}` === key)).filter((s): s is IndexSample => s !== undefined)
    const first = at(1, key) ?? l
    const warm = at(warmupSamples, key) ?? l
    const trend = judgeFlat({ name: key, unit: 'KiB', values: history.map((h) => h.find((s) => `${s.table}.${s.index}` === key)?.bytes ?? 0) }, warmupSamples, tolerancePercent)
    return [
      l.index, l.method, String(kib(first.bytes)), String(kib(warm.bytes)), String(kib(l.bytes)), String(kib(Math.max(...all.map((s) => s.bytes)))),
      `${trend.growthPercent >= 0 ? '+' : ''}${trend.growthPercent}%${trend.flat ? '' : ' !'}`,
      l.leafPages === undefined ? '-' : `${warm.leafPages ?? '-'} -> ${l.leafPages}`,
      l.deletedPages === undefined ? '-' : `${l.deletedPages} / ${Math.max(...all.map((s) => s.deletedPages ?? 0))}`,
      l.density === undefined ? '-' : `${Math.round(l.density)}%`,
      l.method === 'gin' ? String(Math.max(...all.map((s) => s.pendingPages ?? 0))) : '-',
    ]
  })
  const header = ['index', 'type', 'KiB @1', '@warm-up', 'last', 'peak', 'trend', 'leaf pages', 'deleted last/peak', 'density', 'gin pending peak']
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)))
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')
  return [line(header), ...rows.map(line)]
}
