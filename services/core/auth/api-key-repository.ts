import { and, asc, eq, isNull, lt, or, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { apiKeys, type ApiKeyRow } from '../db/schema.ts'

export type NewApiKey = Pick<ApiKeyRow, 'id' | 'tenant' | 'name' | 'prefix' | 'keyHash'>

/** The api_keys table: stored hashes, never keys. */
export function createApiKeyRepository (db: Db) {
  return {
    /** Inserts a key; a hash that is already stored is left as it is (a revoked key stays revoked). */
    async insert (key: NewApiKey): Promise<boolean> {
      const rows = await db.insert(apiKeys).values(key).onConflictDoNothing({ target: apiKeys.keyHash }).returning({ id: apiKeys.id })
      return rows.length > 0
    },

    async findByHash (keyHash: string): Promise<Pick<ApiKeyRow, 'id' | 'tenant' | 'keyHash' | 'revokedAt'> | undefined> {
      const [row] = await db.select({ id: apiKeys.id, tenant: apiKeys.tenant, keyHash: apiKeys.keyHash, revokedAt: apiKeys.revokedAt })
        .from(apiKeys).where(eq(apiKeys.keyHash, keyHash)).limit(1)
      return row
    },

    async list (tenant?: string): Promise<ApiKeyRow[]> {
      const query = db.select().from(apiKeys)
      return (tenant ? query.where(eq(apiKeys.tenant, tenant)) : query).orderBy(asc(apiKeys.createdAt))
    },

    /** Revokes by id or by hash; already revoked keys keep their first revocation time. */
    async revoke (by: { id: string } | { keyHash: string }): Promise<ApiKeyRow | undefined> {
      const match = 'id' in by ? eq(apiKeys.id, by.id) : eq(apiKeys.keyHash, by.keyHash)
      const [row] = await db.update(apiKeys).set({ revokedAt: sql`coalesce(${apiKeys.revokedAt}, now())` })
        .where(match).returning()
      return row
    },

    /** Conditional, so replicas racing to record the same use write at most once per interval. */
    async touch (id: string, olderThanMs: number): Promise<void> {
      await db.update(apiKeys).set({ lastUsedAt: sql`now()` }).where(and(eq(apiKeys.id, id), or(
        isNull(apiKeys.lastUsedAt),
        lt(apiKeys.lastUsedAt, sql`now() - make_interval(secs => ${olderThanMs / 1000})`),
      )))
    },
  }
}

export type ApiKeyRepository = ReturnType<typeof createApiKeyRepository>
