import type postgres from 'postgres'
import type { NewTaskRow, TaskRow } from '../db/schema.ts'
import { TASK_COLUMN_TYPES, TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'

// Task rows go to Postgres as one JSON array per statement (a single text parameter, so the
// statement is prepared once whatever the row count) and come back as TaskRow, the shape
// Drizzle would return. The column list comes from the Drizzle schema, so it cannot drift.

const COLUMNS = TASK_COLUMN_TYPES

/** `skip`: rows whose idempotency key is taken are left out; `fail`: the statement fails instead. */
export type OnConflict = 'skip' | 'fail'

// The JSON carries the rows as the task service built them (TaskRow field names), so they
// are serialised as they are; the record definition maps each field to its column.
function insertSql (keys: string[], onConflict: OnConflict): string {
  const cols = COLUMNS.filter((c) => keys.includes(c.key))
  return `insert into tasks (${cols.map((c) => `"${c.name}"`).join(', ')})
    select ${cols.map((c) => `i."${c.key}"`).join(', ')}
    from jsonb_to_recordset($1::text::jsonb) as i(${cols.map((c) => `"${c.key}" ${c.type}`).join(', ')})
    ${onConflict === 'skip' ? 'on conflict do nothing' : ''}
    returning ${TASK_RETURNING}`
}

/** Postgres' unique_violation: with `fail`, an idempotency key that is already taken. */
export const isUniqueViolation = (err: unknown): boolean => (err as { code?: unknown })?.code === '23505'

/**
 * Inserts rows built by the task service in one statement (so all or nothing). With `skip`,
 * rows whose idempotency key is taken are left out (the unique index arbitrates); with
 * `fail`, such a row fails the whole statement with a unique violation. Returns the stored
 * row, or undefined, for each input row.
 */
export function createTaskInsertStatement (sql: Pick<postgres.Sql, 'unsafe'>, onConflict: OnConflict = 'skip') {
  const statements = new Map<string, string>()

  async function insertGroup (keys: string[], rows: NewTaskRow[]): Promise<Map<string, TaskRow>> {
    const signature = keys.join(',')
    let text = statements.get(signature)
    if (!text) statements.set(signature, (text = insertSql(keys, onConflict)))
    const stored = await sql.unsafe(text, [JSON.stringify(rows)], { prepare: true })
    return new Map(stored.map((raw) => { const row = toTaskRow(raw); return [row.id, row] }))
  }

  return async function insert (rows: NewTaskRow[]): Promise<(TaskRow | undefined)[]> {
    // Rows with the same set of fields share a statement (the task service builds them all alike).
    const groups = new Map<string, { keys: string[], rows: NewTaskRow[] }>()
    for (const row of rows) {
      // Fields left undefined are absent from the JSON: the column takes its default.
      const keys = Object.keys(row).filter((k) => (row as Record<string, unknown>)[k] !== undefined)
      const signature = keys.join(',')
      const group = groups.get(signature) ?? { keys, rows: [] }
      group.rows.push(row)
      groups.set(signature, group)
    }
    const stored = new Map<string, TaskRow>()
    for (const result of await Promise.all([...groups.values()].map((g) => insertGroup(g.keys, g.rows)))) {
      for (const [id, row] of result) stored.set(id, row)
    }
    return rows.map((row) => stored.get(row.id))
  }
}
