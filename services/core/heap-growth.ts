import { setFlagsFromString } from 'node:v8'

/**
 * After a full collection V8 lets the old generation grow to up to four times what survived
 * before it collects again. Under load both processes promote mostly short-lived garbage
 * while keeping about 40 MB alive, so the heap swings to 150 MB and more and RSS follows
 * (peak worker RSS about 280 MB at concurrency 100). A fixed growth of 30% holds the peak
 * near 195 MB at the same throughput, but full collections come several times as often and
 * their pauses show in the latency tail (pickup p95 at 200 tasks/s roughly doubles), so it is
 * a choice for memory-tight deployments, not the default. It is a growth factor, not a
 * limit: a heap that needs more still gets it.
 *
 * NODE_OPTIONS does not accept this V8 flag, so the process sets it at start; V8 reads it at
 * each full collection.
 */
export function limitHeapGrowth (percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`)
}
