import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js'
import postgres from 'postgres'
import { driverSocketOption } from './driver-socket.ts'
import * as schema from './schema.ts'
import { pgTimestampToIso } from './timestamp-text.ts'

export type Db = PostgresJsDatabase<typeof schema>
export type DbClient = { db: Db, sql: postgres.Sql, close: () => Promise<void> }

/**
 * How long a connection waits before reconnecting, after `retries` connections of the pool
 * closed on an error since one last connected. The driver's own delay (3^retries / 100 s, up
 * to 20 s) counts the whole pool: a restart that cuts ten connections at once puts every
 * statement 10-20 s behind a server that was back in under a second, about as long as the
 * write batcher waits for an answer. Capped at a second, with jitter: against a server that stays
 * down each connection still retries only every half second to a second.
 */
export function reconnectDelaySeconds (retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1)
}

export function createDbClient (url: string, options: { max: number, applicationName: string }): DbClient {
  const sql = postgres(url, {
    max: options.max,
    onnotice: () => {},
    connection: { application_name: options.applicationName },
    // A statement that hangs on a dead connection must not hold a request or a job forever.
    connect_timeout: 5,
    idle_timeout: 60,
    backoff: reconnectDelaySeconds,
    // Its socket fails every statement queued on a connection that closes after an error.
    ...driverSocketOption(url),
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
