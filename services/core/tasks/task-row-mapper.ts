import { getTableColumns } from 'drizzle-orm'
import { tasks, type TaskRow } from '../db/schema.ts'

// Raw SQL that returns task rows selects these columns and maps them through Drizzle's own
// column decoders: the postgres.js client is shared with Drizzle, which turns its timestamp
// parsing off, so without this a raw row would carry strings where TaskRow has Dates.

const COLUMNS = Object.entries(getTableColumns(tasks)).map(([key, column]) => ({ key, column }))

/** Every task column, aliased to its TaskRow field name. */
export const TASK_RETURNING = COLUMNS.map(({ key, column }) => `"${column.name}" as "${key}"`).join(', ')

/** TASK_RETURNING with every column qualified by a table alias, for queries that join. */
export const taskReturningOf = (alias: string): string =>
  COLUMNS.map(({ key, column }) => `${alias}."${column.name}" as "${key}"`).join(', ')

/** The columns (key, database name, SQL type) of the tasks table. */
export const TASK_COLUMN_TYPES = COLUMNS.map(({ key, column }) => ({ key, name: column.name, type: column.getSQLType() }))

/** A row selected with TASK_RETURNING, decoded as Drizzle would. */
export function toTaskRow (raw: Record<string, unknown>): TaskRow {
  const row: Record<string, unknown> = {}
  for (const { key, column } of COLUMNS) {
    const value = raw[key]
    row[key] = value === null || value === undefined ? null : column.mapFromDriverValue(value)
  }
  return row as TaskRow
}
