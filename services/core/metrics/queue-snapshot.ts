import type { Redis } from 'ioredis'

export type QueueSnapshot = {
  queue: string
  waiting: number
  prioritized: number
  delayed: number
  active: number
  failed: number
  paused: boolean
  /** Epoch ms since which the oldest ready job has been due; null when nothing is ready. */
  oldestReadySince: number | null
}

// Reads every queue's counts and its oldest ready job in one EVAL, so a scrape costs one
// round trip whatever the number of queues. It reads BullMQ 6's key layout directly:
//   <prefix>:<queue>:wait (list, LPUSH in, taken from the right), :prioritized (zset scored
//   priority * 2^32 + arrival counter), :delayed, :failed (zsets), :active (list), :meta (hash,
//   field `paused` while paused), and <prefix>:<queue>:<jobId> (job hash).
// Within one priority level the lowest score arrived first, so the oldest ready job is the
// right end of `wait` or the first member of some priority level; the loop visits at most
// MAX_LEVELS levels (Tasklane uses four).
// BullMQ keeps no "became ready at" time: a job is due at `timestamp` + its initial delay, and
// a retried job at the earliest from the start of its previous attempt (the backoff it then
// waited is not recorded), so a retried job's age includes its backoff.
const SNAPSHOT_SCRIPT = `
local rcall = redis.call
local LEVEL = 4294967296
local MAX_LEVELS = 16
local function readySince (base, id)
  local f = rcall('HMGET', base .. id, 'timestamp', 'processedOn', 'opts')
  local since = tonumber(f[1])
  if not since then return nil end
  if f[3] then
    local ok, opts = pcall(cjson.decode, f[3])
    if ok and type(opts) == 'table' and tonumber(opts.delay) then since = since + tonumber(opts.delay) end
  end
  local processedOn = tonumber(f[2])
  if processedOn and processedOn > since then since = processedOn end
  return since
end
local out = {}
for i = 1, #KEYS do
  local base = KEYS[i]
  local oldest = nil
  local function consider (id)
    if not id then return end
    local since = readySince(base, id)
    if since and (not oldest or since < oldest) then oldest = since end
  end
  consider(rcall('LINDEX', base .. 'wait', -1))
  local first = rcall('ZRANGE', base .. 'prioritized', 0, 0, 'WITHSCORES')
  local levels = 0
  while first[1] and levels < MAX_LEVELS do
    consider(first[1])
    levels = levels + 1
    local nextLevel = (math.floor(tonumber(first[2]) / LEVEL) + 1) * LEVEL
    first = rcall('ZRANGEBYSCORE', base .. 'prioritized', string.format('%.0f', nextLevel), '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
  end
  out[i] = {
    rcall('LLEN', base .. 'wait'),
    rcall('ZCARD', base .. 'prioritized'),
    rcall('ZCARD', base .. 'delayed'),
    rcall('LLEN', base .. 'active'),
    rcall('ZCARD', base .. 'failed'),
    rcall('HEXISTS', base .. 'meta', 'paused'),
    oldest and string.format('%.0f', oldest) or '',
  }
end
return out
`

type Row = [number, number, number, number, number, number, string]

/** Reads a snapshot of every named queue in one round trip to Redis. */
export async function readQueueSnapshots (redis: Redis, prefix: string, queues: readonly string[]): Promise<QueueSnapshot[]> {
  if (queues.length === 0) return []
  const keys = queues.map((q) => `${prefix}:${q}:`)
  const rows = await redis.eval(SNAPSHOT_SCRIPT, keys.length, ...keys) as Row[]
  return rows.map((row, i) => ({
    queue: queues[i]!,
    waiting: row[0],
    prioritized: row[1],
    delayed: row[2],
    active: row[3],
    failed: row[4],
    paused: row[5] === 1,
    oldestReadySince: row[6] === '' ? null : Number(row[6]),
  }))
}
