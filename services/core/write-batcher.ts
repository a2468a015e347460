import { DependencyUnavailableError } from './errors.ts'

/**
 * Coalesces concurrent single-row writes into one multi-row statement. Each call still gets
 * its own answer; under load a statement carries everything that arrived while the previous
 * one ran, and at low load a write goes out on the next turn of the event loop, so batching
 * costs no waiting.
 *
 * `run` receives the items of one batch and returns one result per item, in order. Items
 * with the same `key` never share a batch, nor run while an earlier one is on the wire (the
 * later one waits for it), so writes to one row keep their order and never race. When a
 * batch fails, its items are retried one by one, so one bad item fails only its own caller,
 * and an item that is itself a group of rows (a batch request) stays all or nothing.
 *
 * A batch that has not answered within `timeoutMs` fails its callers and frees its slot:
 * one statement stuck on a dead connection must not hold every later write (without
 * batching it would hold only its own caller). Its keys stay taken until the statement
 * really ends, so a retried write of the same row waits for it instead of racing it. A late
 * answer is ignored; the conditional updates make a retried write safe.
 *
 * A write still waiting for a batch after `timeoutMs` (its row held by such a statement, or
 * every slot taken) fails the same way, with WRITE_TIMEOUT: it never went out, so its caller
 * may retry it, and no caller waits longer than that for an answer, whatever a statement
 * holding its row does.
 *
 * At most `maxPending` rows wait for a batch: past that a write is refused at once with a
 * 503 (DependencyUnavailableError), so a database that falls behind turns into backpressure
 * on the callers instead of a queue that grows until the process runs out of memory.
 */
export function createWriteBatcher<I, O> (options: {
  run: (items: I[]) => Promise<O[]>
  key?: (item: I) => string
  /** How many rows an item holds (1 by default); a batch stops at `maxBatch` rows. */
  weight?: (item: I) => number
  maxBatch?: number
  maxInFlight?: number
  timeoutMs?: number
  maxPending?: number
}) {
  const maxBatch = options.maxBatch ?? 500
  const maxInFlight = options.maxInFlight ?? 4
  const timeoutMs = options.timeoutMs ?? 20_000
  const maxPending = options.maxPending ?? 20_000
  let pendingRows = 0
  type Entry = { item: I, key: string, weight: number, deadline: number, resolve: (value: O) => void, reject: (err: unknown) => void }
  /** In arrival order, so the first entry is the next to expire. */
  let pending: Entry[] = []
  let inFlight = 0
  let scheduled = false
  let serial = 0
  /** Keys of the items in the batch being built and in the batches on the wire. */
  const busy = new Set<string>()
  /** One timer, for the first waiting entry's deadline, while any entry waits. */
  let expiry: NodeJS.Timeout | undefined

  const timeoutError = (what: string) => Object.assign(new Error(`a batched write ${what} within ${timeoutMs} ms`), { code: 'WRITE_TIMEOUT' })

  function armExpiry (): void {
    if (expiry !== undefined || pending.length === 0) return
    expiry = setTimeout(expire, Math.max(0, pending[0]!.deadline - Date.now()))
  }

  function expire (): void {
    expiry = undefined
    const now = Date.now()
    const expired = pending.filter((entry) => entry.deadline <= now)
    if (expired.length > 0) {
      pending = pending.filter((entry) => entry.deadline > now)
      const err = timeoutError('was not sent')
      for (const entry of expired) {
        pendingRows -= entry.weight
        entry.reject(err)
      }
    }
    armExpiry()
  }

  function schedule (): void {
    if (scheduled || inFlight >= maxInFlight || pending.length === 0) return
    scheduled = true
    setImmediate(flush)
  }

  function flush (): void {
    scheduled = false
    if (inFlight >= maxInFlight || pending.length === 0) return
    const batch: Entry[] = []
    const rest: Entry[] = []
    let rows = 0
    for (const entry of pending) {
      if ((batch.length === 0 || rows + entry.weight <= maxBatch) && !busy.has(entry.key)) {
        busy.add(entry.key)
        batch.push(entry)
        rows += entry.weight
      } else {
        rest.push(entry)
      }
    }
    pending = rest
    pendingRows -= rows
    if (pending.length === 0 && expiry !== undefined) {
      clearTimeout(expiry)
      expiry = undefined
    }
    if (batch.length === 0) return // everything waits for a batch on the wire; its end reschedules
    inFlight++
    // A batch that times out gives up its slot (later writes go out) but not its keys: its
    // statement may still run, and a write to the same row must never run beside it.
    let slotHeld = true
    const freeSlot = (): void => {
      if (!slotHeld) return
      slotHeld = false
      inFlight--
      schedule()
    }
    const timer = setTimeout(() => {
      const err = timeoutError('did not answer')
      for (const entry of batch) entry.reject(err)
      freeSlot()
    }, timeoutMs)
    void execute(batch).finally(() => {
      clearTimeout(timer)
      for (const entry of batch) busy.delete(entry.key)
      freeSlot()
      schedule()
    })
    schedule()
  }

  async function execute (batch: Entry[]): Promise<void> {
    try {
      const results = await options.run(batch.map((e) => e.item))
      batch.forEach((e, i) => e.resolve(results[i]!))
    } catch (err) {
      if (batch.length === 1) {
        batch[0]!.reject(err)
        return
      }
      await Promise.all(batch.map(async (e) => {
        try {
          const [result] = await options.run([e.item])
          e.resolve(result!)
        } catch (itemErr) {
          e.reject(itemErr)
        }
      }))
    }
  }

  return function write (item: I): Promise<O> {
    const weight = options.weight ? options.weight(item) : 1
    if (pendingRows > 0 && pendingRows + weight > maxPending) {
      return Promise.reject(new DependencyUnavailableError(`The write queue (${pendingRows} rows waiting)`))
    }
    pendingRows += weight
    return new Promise<O>((resolve, reject) => {
      pending.push({ item, key: options.key ? options.key(item) : String(++serial), weight, deadline: Date.now() + timeoutMs, resolve, reject })
      armExpiry()
      schedule()
    })
  }
}
