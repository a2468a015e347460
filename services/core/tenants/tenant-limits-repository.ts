import { and, eq, isNotNull, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { tasks, tenantLimits, type TenantLimitsRow } from '../db/schema.ts'

/**
 * The limits an operator may set per tenant; a field left out or null means the default.
 * Concurrency maps a queue to the most of the tenant's tasks it runs at once.
 */
export type TenantLimits = {
  retentionDays: number | null
  concurrency?: Record<string, number> | null | undefined
  createPerMinute?: number | null | undefined
}

/** Reads and writes the `tenant_limits` rows; the admin route, fair sharing and the purger go through it. */
export function createTenantLimitsRepository (db: Db) {
  return {
    async get (tenant: string): Promise<TenantLimitsRow | undefined> {
      const [row] = await db.select().from(tenantLimits).where(eq(tenantLimits.tenant, tenant)).limit(1)
      return row
    },

    /** Replaces the tenant's limits (a replace, not a merge: what is left out goes back to the default). */
    async put (tenant: string, limits: TenantLimits): Promise<TenantLimitsRow> {
      const values = { retentionDays: limits.retentionDays, concurrency: limits.concurrency ?? null, createPerMinute: limits.createPerMinute ?? null }
      const [row] = await db.insert(tenantLimits).values({ tenant, ...values })
        .onConflictDoUpdate({ target: tenantLimits.tenant, set: { ...values, updatedAt: sql`now()` } }).returning()
      return row!
    },

    /** Every tenant whose retention differs from the deployment's, in days. */
    async retentionOverrides (): Promise<Map<string, number>> {
      const rows = await db.select({ tenant: tenantLimits.tenant, days: tenantLimits.retentionDays })
        .from(tenantLimits).where(isNotNull(tenantLimits.retentionDays))
      return new Map(rows.map((r) => [r.tenant, r.days!]))
    },

    /** The tenant's running tasks per queue (the limits route's usage). */
    async running (tenant: string): Promise<Record<string, number>> {
      const rows = await db.select({ queue: tasks.queue, count: sql<number>`count(*)::int` }).from(tasks)
        .where(and(eq(tasks.tenant, tenant), eq(tasks.status, 'running'))).groupBy(tasks.queue)
      return Object.fromEntries(rows.map((r) => [r.queue, r.count]))
    },
  }
}

export type TenantLimitsRepository = ReturnType<typeof createTenantLimitsRepository>
