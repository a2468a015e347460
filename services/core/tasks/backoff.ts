import type { Backoff } from '../task-types/task-type.ts'

const MAX_DELAY_MS = 3_600_000

/**
 * Delay before the retry that follows attempt `attempt` (1-based). Exponential delays get
 * ±20% jitter so that tasks failing together do not come back together.
 */
export function retryDelayMs (backoff: Backoff, attempt: number, random = Math.random): number {
  if (backoff.type === 'fixed') return backoff.delayMs
  const base = Math.min(backoff.delayMs * 2 ** (attempt - 1), MAX_DELAY_MS)
  return Math.round(base * (0.8 + 0.4 * random()))
}
