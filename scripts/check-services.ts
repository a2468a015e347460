// `make dev` step: can the configured Postgres and Redis be reached? One line each, exit 1 if not.
// Reads DATABASE_URL and REDIS_URL as the processes will (defaults included), not fixed ports.
import postgres from 'postgres'
import { Redis } from 'ioredis'
import { loadConfig } from '../services/core/config.ts'

/** The URL without its password, fit for a terminal. */
function shown (url: string): string {
  try {
    const u = new URL(url)
    if (u.password) u.password = '***'
    return u.toString()
  } catch {
    return '(unparseable URL)'
  }
}

async function checkPostgres (url: string): Promise<string | undefined> {
  const sql = postgres(url, { max: 1, connect_timeout: 3, onnotice: () => {} })
  try {
    await sql`select 1`
    return undefined
  } catch (err) {
    // The server answers; `npm run migrate` creates the database.
    if ((err as { code?: unknown }).code === '3D000') return undefined
    return (err as Error).message
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {})
  }
}

async function checkRedis (url: string): Promise<string | undefined> {
  // No retries and no offline queue: one attempt, and its error is reported here, not printed by ioredis.
  const redis = new Redis(url, { lazyConnect: true, connectTimeout: 3_000, retryStrategy: () => null, maxRetriesPerRequest: 0, enableOfflineQueue: false })
  let lastError: Error | undefined
  redis.on('error', (err: Error) => { lastError = err })
  try {
    await redis.connect()
    await redis.ping()
    return undefined
  } catch (err) {
    return (lastError ?? err as Error).message
  } finally {
    redis.disconnect()
  }
}

const config = loadConfig()
const [pg, redis] = await Promise.all([checkPostgres(config.DATABASE_URL), checkRedis(config.REDIS_URL)])
process.stdout.write(pg ? `postgres: cannot connect to ${shown(config.DATABASE_URL)}: ${pg}\n` : `postgres: ok (${shown(config.DATABASE_URL)})\n`)
process.stdout.write(redis ? `redis: cannot connect to ${shown(config.REDIS_URL)}: ${redis}\n` : `redis: ok (${shown(config.REDIS_URL)})\n`)
if (pg || redis) {
  process.stdout.write('Start them (make services starts local ones), or set DATABASE_URL and REDIS_URL.\n')
  process.exitCode = 1
}
