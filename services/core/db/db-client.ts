import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import * as schema from './schema.ts'

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
  return {
    db: drizzle(sql, { schema }),
    sql,
    close: () => sql.end({ timeout: 5 }),
  }
}
