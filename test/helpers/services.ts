import { randomBytes } from 'node:crypto'
import { connect } from 'node:net'
import { Redis } from 'ioredis'
import postgres from 'postgres'
import { createDbClient } from '../../services/core/db/db-client.ts'
import { runMigrations } from '../../services/core/db/migrate.ts'

/**
 * Where the tests find Postgres and Redis: DATABASE_URL / REDIS_URL when set, else the local
 * services, else containers started through testcontainers when a Docker engine exists.
 */
type Endpoints = { databaseUrl: string, redisUrl: string }
let endpoints: Promise<Endpoints> | undefined

const LOCAL_PG = 'postgres://postgres@127.0.0.1:5432/postgres'
const LOCAL_REDIS = 'redis://127.0.0.1:6379'

function answers (host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port, timeout: 1_000 })
    socket.once('connect', () => { socket.destroy(); resolve(true) })
    socket.once('error', () => resolve(false))
    socket.once('timeout', () => { socket.destroy(); resolve(false) })
  })
}

async function startContainers (): Promise<Endpoints> {
  const { GenericContainer, Wait } = await import('testcontainers')
  const pg = await new GenericContainer('postgres:16-alpine')
    .withEnvironment({ POSTGRES_HOST_AUTH_METHOD: 'trust' }).withExposedPorts(5432)
    .withWaitStrategy(Wait.forLogMessage(/ready to accept connections/, 2)).start()
  const redis = await new GenericContainer('redis:7-alpine').withExposedPorts(6379).start()
  return {
    databaseUrl: `postgres://postgres@${pg.getHost()}:${pg.getMappedPort(5432)}/postgres`,
    redisUrl: `redis://${redis.getHost()}:${redis.getMappedPort(6379)}`,
  }
}

async function resolveEndpoints (): Promise<Endpoints> {
  const databaseUrl = process.env.DATABASE_URL
  const redisUrl = process.env.REDIS_URL
  if (databaseUrl && redisUrl) return { databaseUrl, redisUrl }
  if (await answers('127.0.0.1', 5432) && await answers('127.0.0.1', 6379)) {
    return { databaseUrl: databaseUrl ?? LOCAL_PG, redisUrl: redisUrl ?? LOCAL_REDIS }
  }
  return startContainers()
}

export const serviceEndpoints = (): Promise<Endpoints> => (endpoints ??= resolveEndpoints())

export const uniqueName = (prefix: string): string => `${prefix}_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`

/** A fresh, migrated database for one test file; `drop` removes it (and any lingering sessions). */
export async function createTestDatabase (serverUrl?: string): Promise<{ url: string, drop: () => Promise<void> }> {
  const databaseUrl = serverUrl ?? (await serviceEndpoints()).databaseUrl
  const name = uniqueName('tasklane_test')
  const admin = postgres(databaseUrl, { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database "${name}"`)
  const url = new URL(databaseUrl)
  url.pathname = `/${name}`
  const migrator = createDbClient(url.toString(), { max: 1, applicationName: 'tasklane-test-migrate' })
  await runMigrations(migrator.db)
  await migrator.close()
  return {
    url: url.toString(),
    async drop () {
      await admin.unsafe(`drop database if exists "${name}" with (force)`)
      await admin.end({ timeout: 5 })
    },
  }
}

/** Deletes every key under `prefix:` (SCAN + DEL): what a flush of one tenant's keys looks like. */
export async function deletePrefixKeys (redisUrl: string, prefix: string): Promise<number> {
  // Gives up at once when that Redis is gone (a fault test may have stopped it).
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 1, connectTimeout: 2_000, retryStrategy: () => null })
  client.on('error', () => {})
  let deleted = 0
  try {
    let cursor = '0'
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix.replace(/[*?[\]\\]/g, '\\$&')}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) deleted += await client.del(...keys)
    } while (cursor !== '0')
  } finally {
    client.disconnect()
  }
  return deleted
}
