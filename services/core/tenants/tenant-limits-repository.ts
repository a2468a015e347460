import { eq, isNotNull, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { tenantLimits, type TenantLimitsRow } from '../db/schema.ts'

/** The limits an operator may set per tenant; a field left out or null means the default. */
export type TenantLimits = { retentionDays: number | null }

/** Reads and writes the `tenant_limits` rows; the admin route and the purger go through it. */
export function createTenantLimitsRepository (db: Db) {
  return {
    async get (tenant: string): Promise<TenantLimitsRow | undefined> {
      const [row] = await db.select().from(tenantLimits).where(eq(tenantLimits.tenant, tenant)).limit(1)
      return row
    },

    /** Replaces the tenant's limits (a replace, not a merge: what is left out goes back to the default). */
    async put (tenant: string, limits: TenantLimits): Promise<TenantLimitsRow> {
      const [row] = await db.insert(tenantLimits).values({ tenant, retentionDays: limits.retentionDays })
        .onConflictDoUpdate({
          target: tenantLimits.tenant,
          set: { retentionDays: limits.retentionDays, updatedAt: sql`now()` },
        }).returning()
      return row!
    },

    /** Every tenant whose retention differs from the deployment's, in days. */
    async retentionOverrides (): Promise<Map<string, number>> {
      const rows = await db.select({ tenant: tenantLimits.tenant, days: tenantLimits.retentionDays })
        .from(tenantLimits).where(isNotNull(tenantLimits.retentionDays))
      return new Map(rows.map((r) => [r.tenant, r.days!]))
    },
  }
}

export type TenantLimitsRepository = ReturnType<typeof createTenantLimitsRepository>
