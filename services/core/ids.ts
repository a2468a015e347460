import { v7 } from 'uuid'

/** Task ids are UUIDv7: time-ordered, so the primary key index doubles as creation order. */
export const newTaskId = (): string => v7()

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
