import { Redis, type RedisOptions } from 'ioredis'

/**
 * Producers (the API) fail fast so a Redis outage never holds an HTTP request; the task is
 * already in Postgres and the reconciler enqueues it later. Consumers (workers) wait forever
 * for Redis to come back, as BullMQ requires for blocking commands.
 */
export function createRedisConnection (url: string, role: 'producer' | 'consumer', name: string,
  extra: { autoPipelining?: boolean } = {}): Redis {
  const common: RedisOptions = {
    connectionName: name,
    // Commands issued in the same tick go out in one write (e.g. the events of a batch of
    // tasks that started together, or the job finishes of a worker's concurrent tasks).
    enableAutoPipelining: extra.autoPipelining ?? false,
    // A blocking command would hold every command queued behind it in its pipeline; BullMQ
    // sends it on a connection of its own, but it goes out alone either way.
    autoPipeliningIgnoredCommands: ['bzpopmin'],
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 2_000),
  }
  const options: RedisOptions = role === 'producer'
    ? { ...common, enableOfflineQueue: false, maxRetriesPerRequest: 1, commandTimeout: 2_000 }
    : { ...common, maxRetriesPerRequest: null }
  return new Redis(url, options)
}
