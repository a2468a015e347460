import { setTimeout as sleep } from 'node:timers/promises'
import { isOutage, isUnanswered } from './outage.ts'

/**
 * Retries a write that failed because its connection was cut (a Postgres failover, a killed
 * backend), or that the write batcher stopped waiting for (the statement sat on a connection
 * waiting to reconnect). Conditional updates make the retry safe: a write that did land is a
 * no-op the second time. Giving up on a write that may still land would be worse than
 * waiting: a claim given up on goes back to BullMQ, whose next delivery claims under a new
 * lease and finds the late one's attempt, which it records as lost although it never ran.
 */
export async function retryOnOutage<T> (write: () => Promise<T>, tries = 6, firstDelayMs = 100): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await write()
    } catch (err) {
      if (attempt >= tries || !(isOutage(err) || isUnanswered(err))) throw err
      await sleep(firstDelayMs * 2 ** (attempt - 1))
    }
  }
}
