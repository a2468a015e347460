import { createHash } from 'node:crypto'

/** JSON with object keys sorted, so that key order does not make two equal bodies differ. */
function canonical (value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`
  if (value !== null && typeof value === 'object') {
    const entries = Object.keys(value).sort()
      .filter((k) => (value as Record<string, unknown>)[k] !== undefined)
      .map((k) => `${JSON.stringify(k)}:${canonical((value as Record<string, unknown>)[k])}`)
    return `{${entries.join(',')}}`
  }
  return JSON.stringify(value) ?? 'null'
}

/** Fingerprint of a create request, to tell an idempotent replay from a reused key. */
export const requestHash = (body: unknown): string =>
  createHash('sha256').update(canonical(body)).digest('base64url')
