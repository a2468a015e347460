import type { Logger } from '../log.ts'

// postgres.js (3.4.9) runs an internal query for the array types as the first statement of
// every new connection and drops that query's promise (porsager/postgres#1192, #1223). When
// the connection's backend is terminated (pg_terminate_backend, a failover) during it, the
// rejection reaches the process as unhandled, although the query that opened the connection
// fails (and is retried) on its own and the pool reconnects. close-with-grace treats every
// unhandled rejection as fatal, so one killed backend stopped the whole worker with its jobs.
const TYPE_FETCH = 'pg_catalog.pg_type'

/** The rejection of the driver's dropped array-types query: nothing of ours is waiting on it. */
export function isDroppedTypeFetch (reason: unknown): boolean {
  const query = (reason as { query?: unknown } | null)?.query
  return typeof query === 'string' && query.includes(TYPE_FETCH)
}

/**
 * Logs and drops the driver's dropped types-query rejection; any other unhandled rejection
 * is thrown again, so the process's uncaughtException handler (close-with-grace) stops the
 * process as before. Give close-with-grace `skip: ['unhandledRejection']`.
 */
export function guardUnhandledRejections (log: Logger): void {
  process.on('unhandledRejection', (reason) => {
    if (isDroppedTypeFetch(reason)) {
      log.warn({ err: reason }, 'a new Postgres connection was cut while the driver read its types; the pool reconnects')
      return
    }
    throw reason
  })
}
