import { Counter, type Registry } from 'prom-client'
import type { DeferredReason } from './task-admission.ts'

/**
 * tasklane_dispatch_deferred_total{queue, reason}: tasks stored (or made ready) held instead of
 * dispatched. Every process that admits tasks counts its own (the API its creates, a worker its
 * schedules' tasks and released dependents). Returns the counting function fair sharing calls.
 */
export function createDeferredCounter (registry: Registry, queues: readonly string[]) {
  const deferred = new Counter({
    name: 'tasklane_dispatch_deferred_total',
    help: 'Tasks held back instead of dispatched, by reason (tenant_window, tenant_concurrency, dispatch_unavailable)',
    labelNames: ['queue', 'reason'] as const,
    registers: [registry],
  })
  // Every known series starts at 0, so rate() sees the first deferral too.
  for (const queue of queues) for (const reason of ['tenant_window', 'tenant_concurrency']) deferred.inc({ queue, reason }, 0)
  return (queue: string, reason: DeferredReason, count: number): void => { deferred.inc({ queue, reason }, count) }
}
