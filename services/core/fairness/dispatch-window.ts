import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'

// Each tenant has a dispatch window per queue: the most of its tasks of that queue that may
// sit in BullMQ at once (waiting, delayed for a retry, active). Its size is the tenant's
// concurrency for the queue, or the deployment's window when none is set. Because every
// executor takes its jobs from BullMQ, the window caps what the tenant runs everywhere, and a
// flood waits in Postgres (held) instead of in front of other tenants' tasks.
//
// Redis keeps the count: `<prefix>:fair:<queue>` (tenant -> tasks dispatched) and
// `<prefix>:fair-held:<queue>` (tenant -> 1 while the tenant has held tasks there, so new
// tasks queue behind them instead of overtaking). Postgres stays the truth: the admission loop
// recomputes the counters from it and corrects drift.

// A tenant's entry in the counter hash exists only while it has tasks dispatched (the scripts
// delete it at zero), so the hash's length says how many tenants have work in BullMQ.

// KEYS: counter hash, held-flag hash. ARGV: one request after another, each five values:
// tenant, wanted, cap, honour the held flag (1/0), cap while alone. Answers two numbers per
// request, { granted, dispatched before }, exactly as if the requests had run one by one in
// order: each grants min(wanted, cap - dispatched) slots; the cap is the larger one while no
// other tenant has tasks dispatched or held in the queue; one that grants fewer than wanted
// marks the tenant as having held tasks. The reads and writes are made once per tenant (the
// requests of one create burst are mostly one tenant's), the writes at the end.
const RESERVE = `
local raws, flags, added, flagged = {}, {}, {}, {}
local newFields, newFlags = 0, 0
local counterLen, heldLen
local function raw (tenant)
  if raws[tenant] == nil then
    local v = redis.call('HGET', KEYS[1], tenant)
    raws[tenant] = v and tonumber(v) or false
  end
  return raws[tenant]
end
local function flag (tenant)
  if flags[tenant] == nil then flags[tenant] = redis.call('HEXISTS', KEYS[2], tenant) == 1 end
  return flags[tenant]
end
local out = {}
for i = 1, #ARGV, 5 do
  local tenant, wanted, cap, honour, alone = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2]), ARGV[i + 3] == '1', tonumber(ARGV[i + 4])
  if honour and flag(tenant) then
    out[#out + 1] = 0
    out[#out + 1] = 0
  else
    local r = raw(tenant)
    local used = math.max(0, r or 0)
    if alone > cap and used + wanted > cap then
      counterLen = counterLen or (redis.call('HLEN', KEYS[1]) + newFields)
      heldLen = heldLen or (redis.call('HLEN', KEYS[2]) + newFlags)
      -- Honoured, the tenant's own flag is known to be clear (it would have got nothing above).
      local ownHeld = 0
      if not honour and flag(tenant) then ownHeld = 1 end
      if counterLen - (r and 1 or 0) == 0 and heldLen - ownHeld == 0 then cap = alone end
    end
    local granted = math.min(wanted, cap - used)
    if granted < 0 then granted = 0 end
    if granted > 0 then
      if not r then
        newFields = newFields + 1
        if counterLen then counterLen = counterLen + 1 end
      end
      raws[tenant] = (r or 0) + granted
      added[tenant] = (added[tenant] or 0) + granted
    end
    if granted < wanted and honour and not flag(tenant) then
      flags[tenant] = true
      flagged[#flagged + 1] = tenant
      newFlags = newFlags + 1
      if heldLen then heldLen = heldLen + 1 end
    end
    out[#out + 1] = granted
    out[#out + 1] = used
  end
end
for tenant, n in pairs(added) do redis.call('HINCRBY', KEYS[1], tenant, n) end
for _, tenant in ipairs(flagged) do redis.call('HSET', KEYS[2], tenant, 1) end
return out`

// KEYS: counter hash, held-flag hash. ARGV: signal channel, queue, then tenant, count pairs.
// Frees slots, and signals the admission loop when a tenant with held tasks freed some.
const RELEASE = `
local signal = false
for i = 3, #ARGV, 2 do
  if redis.call('HINCRBY', KEYS[1], ARGV[i], -tonumber(ARGV[i + 1])) <= 0 then redis.call('HDEL', KEYS[1], ARGV[i]) end
  if redis.call('HEXISTS', KEYS[2], ARGV[i]) == 1 then signal = true end
end
if signal then redis.call('PUBLISH', ARGV[1], ARGV[2]) end
return 0`

// KEYS: counter hash. ARGV: tenant, delta. A correction from Postgres' truth.
const ADJUST = `
if redis.call('HINCRBY', KEYS[1], ARGV[1], tonumber(ARGV[2])) <= 0 then redis.call('HDEL', KEYS[1], ARGV[1]) end
return 0`

type ScriptRedis = Redis & {
  fairReserve: (counter: string, held: string, ...args: (string | number)[]) => Promise<number[]>
  fairRelease: (counter: string, held: string, ...args: (string | number)[]) => Promise<number>
  fairAdjust: (counter: string, tenant: string, delta: number) => Promise<number>
}

export type DispatchedTask = { tenant: string, queue: string }

type ReserveAsk = {
  tenant: string, wanted: number, limit: { cap: number, alone: number }, honourHeld: boolean
  resolve: (answer: { granted: number, first: number }) => void
  reject: (err: unknown) => void
}

/** Requests one script call carries at most (five arguments each), so no call runs long. */
const RESERVES_PER_CALL = 500

export function dispatchKeys (prefix: string) {
  return {
    counter: (queue: string) => `${prefix}:fair:${queue}`,
    held: (queue: string) => `${prefix}:fair-held:${queue}`,
    /** Published when slots of a tenant with held tasks free up; the message is the queue. */
    signal: `${prefix}:fair:signal`,
  }
}

export function createDispatchWindow (deps: { redis: Redis, prefix: string, log: Logger }) {
  const keys = dispatchKeys(deps.prefix)
  const redis = deps.redis as ScriptRedis
  if (typeof redis.fairReserve !== 'function') {
    redis.defineCommand('fairReserve', { numberOfKeys: 2, lua: RESERVE })
    redis.defineCommand('fairRelease', { numberOfKeys: 2, lua: RELEASE })
    redis.defineCommand('fairAdjust', { numberOfKeys: 1, lua: ADJUST })
  }

  // Reservations of one turn of the event loop go out together, one script call per queue:
  // the creates that arrive together (many requests, one write batch) cost one round trip
  // and one script run between them instead of one each.
  let asks = new Map<string, ReserveAsk[]>()
  let reserving = false

  function flushReserves (): void {
    const batch = asks
    asks = new Map()
    reserving = false
    for (const [queue, all] of batch) {
      for (let at = 0; at < all.length; at += RESERVES_PER_CALL) {
        const chunk = all.slice(at, at + RESERVES_PER_CALL)
        const args = chunk.flatMap((a) => [a.tenant, a.wanted, a.limit.cap, a.honourHeld ? '1' : '0', a.limit.alone])
        redis.fairReserve(keys.counter(queue), keys.held(queue), ...args).then((answer) => {
          chunk.forEach((a, i) => a.resolve({ granted: Number(answer[2 * i]), first: Number(answer[2 * i + 1]) }))
        }, (err: unknown) => {
          for (const a of chunk) a.reject(err)
        })
      }
    }
  }

  // Releases of one turn of the event loop go out together: one script call per queue.
  let pending = new Map<string, Map<string, number>>()
  let flushing: Promise<void> | undefined

  async function flush (): Promise<void> {
    const batch = pending
    pending = new Map()
    flushing = undefined
    await Promise.all([...batch].map(async ([queue, byTenant]) => {
      const args = [...byTenant].flatMap(([tenant, n]) => [tenant, n])
      try {
        await redis.fairRelease(keys.counter(queue), keys.held(queue), keys.signal, queue, ...args)
      } catch (err) {
        // The admission loop's counter repair gives the slots back from Postgres' truth.
        deps.log.warn({ err, queue }, 'could not free dispatch slots; the counter repair will')
      }
    }))
  }

  return {
    keys,
    /**
     * Takes up to `wanted` of the tenant's slots in the queue, within `cap` or, while no other
     * tenant has work there, `alone`; answers how many it got and how many the tenant had
     * dispatched before (the first slot's number).
     * `honourHeld`: none while the tenant has held tasks there (they go first).
     * Sent with the other reservations of this turn of the event loop, in the order asked.
     */
    reserve (queue: string, tenant: string, wanted: number, limit: { cap: number, alone: number }, honourHeld = true): Promise<{ granted: number, first: number }> {
      return new Promise((resolve, reject) => {
        const list = asks.get(queue) ?? []
        list.push({ tenant, wanted, limit, honourHeld, resolve, reject })
        asks.set(queue, list)
        if (!reserving) {
          reserving = true
          setImmediate(flushReserves)
        }
      })
    },
    /** Frees slots of tasks that left BullMQ for good; sent with the others of this tick. */
    release (tasks: readonly DispatchedTask[]): Promise<void> {
      if (tasks.length === 0) return flushing ?? Promise.resolve()
      for (const { tenant, queue } of tasks) {
        const byTenant = pending.get(queue) ?? new Map<string, number>()
        byTenant.set(tenant, (byTenant.get(tenant) ?? 0) + 1)
        pending.set(queue, byTenant)
      }
      flushing ??= new Promise<void>((resolve) => setImmediate(resolve)).then(flush)
      return flushing
    },
    async counters (queue: string): Promise<Map<string, number>> {
      const raw = await redis.hgetall(keys.counter(queue))
      return new Map(Object.entries(raw).map(([tenant, n]) => [tenant, Number(n)]))
    },
    async adjust (queue: string, tenant: string, delta: number): Promise<void> {
      await redis.fairAdjust(keys.counter(queue), tenant, delta)
    },
    async heldFlags (queue: string): Promise<string[]> {
      return redis.hkeys(keys.held(queue))
    },
    async setHeldFlags (queue: string, set: string[], clear: string[]): Promise<void> {
      const multi = redis.multi()
      if (set.length > 0) multi.hset(keys.held(queue), Object.fromEntries(set.map((t) => [t, 1])))
      if (clear.length > 0) multi.hdel(keys.held(queue), ...clear)
      await multi.exec()
    },
  }
}

export type DispatchWindow = ReturnType<typeof createDispatchWindow>
