import { randomFillSync } from 'node:crypto'

/**
 * Task ids are UUIDv7 (RFC 9562): time-ordered, so the primary key index doubles as creation
 * order. Within one millisecond a counter (the 12 bits of rand_a and the top 30 of rand_b),
 * started at a random value, keeps this process's ids increasing, as the uuid package's v7
 * does; unlike it, the random bits come from a pooled buffer, because one random-number call
 * per id was a fiftieth of the API's CPU time under load.
 */
const pool = new Uint8Array(4096)
let poolAt = pool.length
const id = new Uint8Array(16)
let lastMs = -1
let seq = 0
const SEQ_LIMIT = 2 ** 42
const HEX = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))

export function newTaskId (): string {
  if (poolAt + 10 > pool.length) {
    randomFillSync(pool)
    poolAt = 0
  }
  const r = poolAt
  poolAt += 10
  const now = Date.now()
  if (now > lastMs) {
    lastMs = now
    // A start below half the range leaves at least 2^41 ids for the rest of the millisecond.
    seq = (pool[r]! & 0x01) * 2 ** 40 + pool[r + 1]! * 2 ** 32 + (((pool[r + 2]! << 24) | (pool[r + 3]! << 16) | (pool[r + 4]! << 8) | pool[r + 5]!) >>> 0)
  } else if (++seq >= SEQ_LIMIT) {
    // The counter ran out within one millisecond: borrow the next one, as RFC 9562 allows.
    lastMs++
    seq = 0
  }
  const ms = lastMs
  const high = Math.floor(seq / 2 ** 30)
  const low = seq % 2 ** 30
  id[0] = Math.floor(ms / 2 ** 40) & 0xff
  id[1] = Math.floor(ms / 2 ** 32) & 0xff
  id[2] = Math.floor(ms / 2 ** 24) & 0xff
  id[3] = Math.floor(ms / 2 ** 16) & 0xff
  id[4] = Math.floor(ms / 2 ** 8) & 0xff
  id[5] = ms & 0xff
  id[6] = 0x70 | (high >>> 8)
  id[7] = high & 0xff
  id[8] = 0x80 | (low >>> 24)
  id[9] = (low >>> 16) & 0xff
  id[10] = (low >>> 8) & 0xff
  id[11] = low & 0xff
  id[12] = pool[r + 6]!
  id[13] = pool[r + 7]!
  id[14] = pool[r + 8]!
  id[15] = pool[r + 9]!
  const h = (i: number): string => HEX[id[i]!]!
  return h(0) + h(1) + h(2) + h(3) + '-' + h(4) + h(5) + '-' + h(6) + h(7) + '-' + h(8) + h(9) + '-' + h(10) + h(11) + h(12) + h(13) + h(14) + h(15)
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (value: string): boolean => UUID.test(value)

/**
 * The lowest UUIDv7 of a millisecond: every id made at `ms` or later sorts at or above it,
 * so a time bound becomes a range of the primary key (and of every index ending in id).
 */
export function firstIdAt (ms: number): string {
  const hex = Math.max(0, Math.floor(ms)).toString(16).padStart(12, '0').slice(-12)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-0000-0000-000000000000`
}
