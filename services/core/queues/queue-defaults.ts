import { ConfigError, type QueueConcurrency } from '../config.ts'

// Concurrency of a queue when TASKLANE_QUEUES does not set one. `default` runs short local
// work; `http` waits on the network, so it can run many at once cheaply.
const DEFAULT_CONCURRENCY: Record<string, number> = { default: 20, http: 50 }
const FALLBACK_CONCURRENCY = 10

/** Which queues this worker consumes, at what concurrency; unknown queue names are an error. */
export function resolveQueueConcurrency (configured: readonly QueueConcurrency[], known: readonly string[]): QueueConcurrency[] {
  const selected = configured.length > 0 ? configured : known.map((name) => ({ name, concurrency: 0 }))
  return selected.map(({ name, concurrency }) => {
    if (!known.includes(name)) {
      throw new ConfigError(`TASKLANE_QUEUES names queue "${name}", but the known queues are: ${known.join(', ')}`)
    }
    return { name, concurrency: concurrency || (DEFAULT_CONCURRENCY[name] ?? FALLBACK_CONCURRENCY) }
  })
}
