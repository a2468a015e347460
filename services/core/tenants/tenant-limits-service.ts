import type { Redis } from 'ioredis'
import type { Config } from '../config.ts'
import type { Db } from '../db/db-client.ts'
import type { Logger } from '../log.ts'
import { createTenantLimitsRepository, type TenantLimits as StoredLimits } from './tenant-limits-repository.ts'

export type TenantLimitsConfig = Pick<Config, 'tenantConcurrency' | 'TASKLANE_DISPATCH_WINDOW' | 'TASKLANE_DISPATCH_WINDOW_ALONE' | 'TASKLANE_RATE_LIMIT_MAX' |
  'TASKLANE_RATE_LIMIT_WINDOW_MS' | 'TASKLANE_TENANT_LIMITS_CACHE_MS' | 'TASKLANE_QUEUE_PREFIX'>

/**
 * A queue's cap for one tenant, and why tasks beyond it wait (the metric's reason label).
 * `alone`: the cap while no other tenant has work in the queue (a concurrency limit holds
 * whatever the others do; the window only matters when there is someone to share with).
 */
export type DispatchCap = { cap: number, alone: number, reason: 'tenant_concurrency' | 'tenant_window' }

export const limitsChannel = (prefix: string): string => `${prefix}:tenant-limits`

/**
 * Each tenant's limits as stored, over the deployment's defaults. Lookups are cached per
 * process for TASKLANE_TENANT_LIMITS_CACHE_MS; a change made through the admin route is
 * published, and every process that subscribed drops its copy at once.
 */
export function createTenantLimitsService (deps: { db: Db, config: TenantLimitsConfig, log: Logger, redis?: Redis }) {
  const { config } = deps
  const repo = createTenantLimitsRepository(deps.db)
  const cache = new Map<string, { limits: Promise<StoredLimits | undefined>, until: number }>()

  function stored (tenant: string): Promise<StoredLimits | undefined> {
    const now = Date.now()
    const hit = cache.get(tenant)
    if (hit && hit.until > now) return hit.limits
    const limits = repo.get(tenant)
    cache.set(tenant, { limits, until: now + config.TASKLANE_TENANT_LIMITS_CACHE_MS })
    limits.catch(() => cache.delete(tenant))
    return limits
  }

  function capOf (limits: StoredLimits | undefined, queue: string): DispatchCap {
    const own = limits?.concurrency?.[queue] ?? config.tenantConcurrency[queue]
    if (own !== undefined) return { cap: own, alone: own, reason: 'tenant_concurrency' }
    const cap = config.TASKLANE_DISPATCH_WINDOW
    return { cap, alone: Math.max(cap, config.TASKLANE_DISPATCH_WINDOW_ALONE), reason: 'tenant_window' }
  }

  return {
    stored,
    async cap (tenant: string, queue: string): Promise<DispatchCap> {
      return capOf(await stored(tenant), queue)
    },
    /** Tasks the tenant may create per rate-limit window (0: no limit). */
    async createLimit (tenant: string): Promise<number> {
      const perMinute = (await stored(tenant))?.createPerMinute
      if (perMinute == null) return config.TASKLANE_RATE_LIMIT_MAX
      return Math.max(1, Math.round(perMinute * config.TASKLANE_RATE_LIMIT_WINDOW_MS / 60_000))
    },
    /** The limits in force: the tenant's own, else the defaults (null: no limit). */
    async inForce (tenant: string, queues: readonly string[]) {
      const own = await repo.get(tenant)
      const concurrency: Record<string, number | null> = {}
      for (const queue of queues) concurrency[queue] = own?.concurrency?.[queue] ?? config.tenantConcurrency[queue] ?? null
      for (const [queue, n] of Object.entries(own?.concurrency ?? {})) concurrency[queue] = n
      return {
        concurrency,
        createPerMinute: own?.createPerMinute ?? (config.TASKLANE_RATE_LIMIT_MAX === 0 ? null
          : Math.round(config.TASKLANE_RATE_LIMIT_MAX * 60_000 / config.TASKLANE_RATE_LIMIT_WINDOW_MS)),
        retentionDays: own?.retentionDays ?? null,
        dispatchWindow: config.TASKLANE_DISPATCH_WINDOW,
        dispatchWindowAlone: Math.max(config.TASKLANE_DISPATCH_WINDOW, config.TASKLANE_DISPATCH_WINDOW_ALONE),
      }
    },
    async replace (tenant: string, limits: StoredLimits): Promise<void> {
      await repo.put(tenant, limits)
      cache.delete(tenant)
      await deps.redis?.publish(limitsChannel(config.TASKLANE_QUEUE_PREFIX), tenant).catch((err: unknown) =>
        deps.log.warn({ err }, 'could not announce a limits change; other processes see it when their cache expires'))
    },
    running: (tenant: string) => repo.running(tenant),
    /** Drops one tenant's cached limits (a change announced by another process). */
    forget (tenant: string): void {
      cache.delete(tenant)
    },
  }
}

export type TenantLimitsService = ReturnType<typeof createTenantLimitsService>
