import { randomUUID } from 'node:crypto'
import type { BootstrapKey } from '../config.ts'
import type { Db } from '../db/db-client.ts'
import type { Logger } from '../log.ts'
import { API_KEY_FORMAT, TENANT_NAME, generateApiKey, hashApiKey, keyPrefix, sameHash } from './api-key-hash.ts'
import { createApiKeyRepository } from './api-key-repository.ts'

/** Who a valid key speaks for. */
export type Principal = { tenant: string, keyId: string }

export type ApiKeyServiceDeps = {
  db: Db
  log: Logger
  /** How long a verified key is trusted without asking Postgres again (so revocation takes this long). */
  cacheMs: number
  /** How long an unknown or revoked key is refused without asking Postgres again (0: always ask). */
  failureCacheMs?: number
  /** At most one last_used_at write per key and process in this interval. */
  lastUsedIntervalMs?: number
}

const CACHE_LIMIT = 10_000

/** Creates, revokes and verifies API keys; only SHA-256 hashes reach the database. */
export function createApiKeyService (deps: ApiKeyServiceDeps) {
  const repo = createApiKeyRepository(deps.db)
  const lastUsedIntervalMs = deps.lastUsedIntervalMs ?? 60_000
  const verified = new Map<string, { principal: Principal, until: number }>()
  // Keys Postgres did not know, by hash: guessing keys must not cost a query per guess.
  const rejected = new Map<string, number>()
  const failureCacheMs = deps.failureCacheMs ?? 0
  const lastTouched = new Map<string, number>()

  function noteUse (keyId: string): void {
    const now = Date.now()
    if ((lastTouched.get(keyId) ?? -Infinity) > now - lastUsedIntervalMs) return
    if (lastTouched.size >= CACHE_LIMIT) lastTouched.clear()
    lastTouched.set(keyId, now)
    // Fire and forget: a lost last-used stamp must never fail or slow the request.
    repo.touch(keyId, lastUsedIntervalMs).catch((err: unknown) => deps.log.warn({ err, keyId }, 'could not record API key use'))
  }

  return {
    async create (tenant: string, name = 'default') {
      if (!TENANT_NAME.test(tenant)) throw new Error('a tenant is letters, digits and "._-", at most 100 characters')
      const key = generateApiKey()
      const row = { id: randomUUID(), tenant, name, prefix: keyPrefix(key), keyHash: hashApiKey(key) }
      await repo.insert(row)
      rejected.delete(row.keyHash)
      return { id: row.id, tenant, name, prefix: row.prefix, key }
    },

    /** Stores the operator's bootstrap keys; keys already stored (or revoked) are left alone. */
    async bootstrap (keys: readonly BootstrapKey[]): Promise<number> {
      let added = 0
      for (const { tenant, key } of keys) {
        const stored = await repo.insert({ id: randomUUID(), tenant, name: 'bootstrap', prefix: keyPrefix(key), keyHash: hashApiKey(key) })
        rejected.delete(hashApiKey(key))
        if (stored) added++
      }
      return added
    },

    async revoke (by: { id: string } | { key: string }) {
      return repo.revoke('id' in by ? { id: by.id } : { keyHash: hashApiKey(by.key) })
    },

    list: (tenant?: string) => repo.list(tenant),

    /** The principal of a valid, unrevoked key; undefined for anything else, whatever the reason. */
    async authenticate (key: string): Promise<Principal | undefined> {
      if (!API_KEY_FORMAT.test(key)) return undefined
      const hash = hashApiKey(key)
      const cached = verified.get(hash)
      if (cached && cached.until > Date.now()) {
        noteUse(cached.principal.keyId)
        return cached.principal
      }
      const refusedUntil = rejected.get(hash)
      if (refusedUntil !== undefined && refusedUntil > Date.now()) return undefined
      const row = await repo.findByHash(hash)
      // The index lookup already matched; comparing again in constant time keeps the final
      // decision independent of where two digests differ.
      if (!row || !sameHash(row.keyHash, hash) || row.revokedAt !== null) {
        verified.delete(hash)
        if (failureCacheMs > 0) {
          if (rejected.size >= CACHE_LIMIT) rejected.clear()
          rejected.set(hash, Date.now() + failureCacheMs)
        }
        return undefined
      }
      rejected.delete(hash)
      const principal = { tenant: row.tenant, keyId: row.id }
      if (deps.cacheMs > 0) {
        if (verified.size >= CACHE_LIMIT) verified.clear()
        verified.set(hash, { principal, until: Date.now() + deps.cacheMs })
      }
      noteUse(row.id)
      return principal
    },
  }
}

export type ApiKeyService = ReturnType<typeof createApiKeyService>
