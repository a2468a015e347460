import { setTimeout as sleep } from 'node:timers/promises'
import { isOutage } from './outage.ts'

/**
 * Retries a write that failed because its connection was cut (a Postgres failover, a killed
 * backend). Conditional updates make the retry safe: a write that did land is a no-op the
 * second time.
 */
export async function retryOnOutage<T> (write: () => Promise<T>, tries = 6, firstDelayMs = 100): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write()
    } catch (err) {
      if (attempt >= tries || !isOutage(err)) throw err
      await sleep(firstDelayMs * 2 ** (attempt - 1))
    }
  }
}
