import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto'
import { ConfigError } from '../config.ts'

/** How a sealed field starts; the key id follows, so a rotated key still opens what it sealed. */
const PREFIX = 'tlsec:v1:'
/** The key id of a field sealed without a key (no TASKLANE_ENCRYPTION_KEY): marked, masked, not encrypted. */
const PLAIN = 'plain'
const KEY_ITEM = /^([A-Za-z0-9_-]{1,32}):(.+)$/

export const MASK = '********'

export class SecretKeyUnknownError extends Error {
  override name = 'SecretKeyUnknownError'
  readonly code = 'SECRET_KEY_UNKNOWN'
}

function parseKey (item: string, variable: string): [string, Buffer] {
  const match = KEY_ITEM.exec(item.trim())
  const material = match?.[2] ?? ''
  const key = /^[0-9a-f]{64}$/i.test(material) ? Buffer.from(material, 'hex') : Buffer.from(material, 'base64')
  if (!match || match[1] === PLAIN || key.length !== 32) {
    // Never the value: configuration errors end up in logs.
    throw new ConfigError(`${variable}: a key is "<id>:<32 bytes as 64 hex or base64 characters>" (id of letters, digits, "_-", not "plain")`)
  }
  return [match[1]!, key]
}

export const isSealed = (value: unknown): value is string => typeof value === 'string' && value.startsWith(PREFIX)

/**
 * Seals and opens the secret fields of task payloads with AES-256-GCM. A sealed value is
 * `tlsec:v1:<key id>:<iv>:<tag>:<ciphertext>` (base64url), so decryption picks the key that
 * sealed it: rotate by making a new key current and keeping the old one among the previous keys
 * until no stored task needs it. Without a current key, fields are sealed as `plain` (marked and
 * masked on read, not encrypted).
 */
export function createSecretBox (config: { TASKLANE_ENCRYPTION_KEY: string, TASKLANE_ENCRYPTION_PREVIOUS_KEYS: string }) {
  const current = config.TASKLANE_ENCRYPTION_KEY.trim() === '' ? undefined : parseKey(config.TASKLANE_ENCRYPTION_KEY, 'TASKLANE_ENCRYPTION_KEY')
  const keys = new Map<string, Buffer>(config.TASKLANE_ENCRYPTION_PREVIOUS_KEYS.split(',').filter((s) => s.trim() !== '')
    .map((item) => parseKey(item, 'TASKLANE_ENCRYPTION_PREVIOUS_KEYS')))
  if (current) keys.set(current[0], current[1])

  function seal (value: unknown): string {
    const json = JSON.stringify(value)
    if (!current) return `${PREFIX}${PLAIN}:${Buffer.from(json).toString('base64url')}`
    const iv = randomBytes(12)
    const cipher = createCipheriv('aes-256-gcm', current[1], iv)
    // The key id is authenticated too: a value cannot be moved under another key's name.
    cipher.setAAD(Buffer.from(current[0]))
    const ciphertext = Buffer.concat([cipher.update(json, 'utf8'), cipher.final()])
    return [PREFIX + current[0], iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join(':')
  }

  function open (sealed: string): unknown {
    const [keyId = '', ...parts] = sealed.slice(PREFIX.length).split(':')
    if (keyId === PLAIN) return JSON.parse(Buffer.from(parts[0] ?? '', 'base64url').toString('utf8'))
    const key = keys.get(keyId)
    if (!key) throw new SecretKeyUnknownError(`no encryption key "${keyId}" here (TASKLANE_ENCRYPTION_KEY or TASKLANE_ENCRYPTION_PREVIOUS_KEYS)`)
    const [iv, tag, ciphertext] = parts.map((p) => Buffer.from(p, 'base64url'))
    const decipher = createDecipheriv('aes-256-gcm', key, iv!)
    decipher.setAAD(Buffer.from(keyId))
    decipher.setAuthTag(tag!)
    return JSON.parse(Buffer.concat([decipher.update(ciphertext!), decipher.final()]).toString('utf8'))
  }

  return {
    /** Whether secrets are encrypted (a current key is set). */
    encrypts: current !== undefined,
    /** The payload with each listed top-level field sealed. */
    sealFields (payload: unknown, fields: readonly string[] | undefined): unknown {
      if (!fields?.length || payload === null || typeof payload !== 'object' || Array.isArray(payload)) return payload
      const out: Record<string, unknown> = { ...(payload as Record<string, unknown>) }
      for (const field of fields) if (Object.hasOwn(out, field)) out[field] = seal(out[field])
      return out
    },
    /** The payload with its sealed fields opened: for the handler, never for a client or a log. */
    openFields (payload: unknown): unknown {
      if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return payload
      const entries = Object.entries(payload as Record<string, unknown>)
      if (!entries.some(([, v]) => isSealed(v))) return payload
      return Object.fromEntries(entries.map(([k, v]) => [k, isSealed(v) ? open(v) : v]))
    },
  }
}

export type SecretBox = ReturnType<typeof createSecretBox>

/** The payload as clients see it: every sealed top-level field replaced by a mask. */
export function maskSealed (payload: unknown): unknown {
  if (payload === null || typeof payload !== 'object' || Array.isArray(payload)) return payload
  const entries = Object.entries(payload as Record<string, unknown>)
  if (!entries.some(([, v]) => isSealed(v))) return payload
  return Object.fromEntries(entries.map(([k, v]) => [k, isSealed(v) ? MASK : v]))
}
