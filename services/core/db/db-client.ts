import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import * as schema from './schema.ts'
import { pgTimestampToIso } from './timestamp-text.ts'

export type Db = PostgresJsDatabase<typeof schema>
export type DbClient = { db: Db, sql: postgres.Sql, close: () => Promise<void> }

export function createDbClient (url: string, options: { max: number, applicationName: string }): DbClient {
  const sql = postgres(url, {
    max: options.max,
    onnotice: () => {},
    connection: { application_name: options.applicationName },
    // A statement that hangs on a dead connection must not hold a request or a job forever.
    connect_timeout: 5,
    idle_timeout: 60,
  })
  const db = drizzle(sql, { schema })
  // After drizzle, which makes timestamptz text for every query on this client (its own and raw).
  sql.options.parsers[1184] = pgTimestampToIso
  return {
    db,
    sql,
    close: () => sql.end({ timeout: 5 }),
  }
}
