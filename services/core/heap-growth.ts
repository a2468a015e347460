import { setFlagsFromString } from 'node:v8'

/**
 * After a full collection V8 lets the old generation grow to up to four times what survived
 * before it collects again. Under load both processes promote mostly short-lived garbage while
 * keeping about 40 MB alive, so the heap swings far past that and RSS follows: with V8's own
 * growth peak RSS measured 195-285 MB (API) and 187-205 MB (worker) at concurrency 100. A
 * growth of 60% (the default) measured 170-210 MB (API) and about 145 MB (worker) at no
 * measurable cost in CPU per task; full collections come more often, which shows in the
 * latency tail. It is a growth factor, not a
 * limit: a heap that needs more still gets it. 0 leaves the growth to V8.
 *
 * NODE_OPTIONS does not accept this V8 flag, so the process sets it at start; V8 reads it at
 * each full collection.
 */
export function limitHeapGrowth (percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`)
}
