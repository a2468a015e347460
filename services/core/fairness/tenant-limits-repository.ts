import { and, eq, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { tasks, tenantLimits, type TenantLimitsRow } from '../db/schema.ts'

export type StoredLimits = Pick<TenantLimitsRow, 'concurrency' | 'createPerMinute' | 'retentionDays'>

/** The tenant_limits table, and the usage the limits route reports. */
export function createTenantLimitsRepository (db: Db) {
  return {
    async find (tenant: string): Promise<StoredLimits | undefined> {
      const [row] = await db.select({
        concurrency: tenantLimits.concurrency, createPerMinute: tenantLimits.createPerMinute, retentionDays: tenantLimits.retentionDays,
      }).from(tenantLimits).where(eq(tenantLimits.tenant, tenant)).limit(1)
      return row
    },

    /** Replaces the tenant's limits (a PUT): every field not given is back to the default. */
    async replace (tenant: string, limits: StoredLimits): Promise<void> {
      await db.insert(tenantLimits).values({ tenant, ...limits })
        .onConflictDoUpdate({ target: tenantLimits.tenant, set: { ...limits, updatedAt: sql`now()` } })
    },

    /** The tenant's running tasks per queue. */
    async running (tenant: string): Promise<Record<string, number>> {
      const rows = await db.select({ queue: tasks.queue, count: sql<number>`count(*)::int` }).from(tasks)
        .where(and(eq(tasks.tenant, tenant), eq(tasks.status, 'running'))).groupBy(tasks.queue)
      return Object.fromEntries(rows.map((r) => [r.queue, r.count]))
    },
  }
}

export type TenantLimitsRepository = ReturnType<typeof createTenantLimitsRepository>
