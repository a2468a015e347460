import { hash, randomBytes, timingSafeEqual } from 'node:crypto'

const KEY_PREFIX = 'tl_'

/**
 * A new API key: 32 random bytes, so a plain SHA-256 of it is safe to store (nothing to
 * brute-force, unlike a password, so no slow hash is needed).
 */
export function generateApiKey (): string {
  return KEY_PREFIX + randomBytes(32).toString('base64url')
}

// Every authenticated request hashes its key: the one-shot digest costs a third of a Hash object's.
export const hashApiKey = (key: string): string => hash('sha256', key, 'hex')

/** The first characters of a key, shown in listings to tell keys apart. */
export const keyPrefix = (key: string): string => key.slice(0, KEY_PREFIX.length + 6)

/** Compares two hex digests without an early exit, so timing says nothing about where they differ. */
export function sameHash (a: string, b: string): boolean {
  const left = Buffer.from(a, 'hex')
  const right = Buffer.from(b, 'hex')
  return left.length === right.length && left.length > 0 && timingSafeEqual(left, right)
}

/** Tenant names: short, printable, safe in logs, Redis keys and URLs. */
export const TENANT_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/
/** What a presented key may look like at all; anything else is rejected before hashing. */
export const API_KEY_FORMAT = /^[\x21-\x7e]{16,512}$/
