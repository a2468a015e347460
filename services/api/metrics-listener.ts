import type { Registry } from 'prom-client'
import { createInternalHttpServer, metricsRoute } from '../core/internal-http-server.ts'

/**
 * The API's internal port (METRICS_PORT): /metrics only. Kept off the public listener so
 * metrics are reachable by Prometheus inside the cluster but not through the load balancer.
 */
export function createMetricsListener (deps: { registry: Registry }) {
  return createInternalHttpServer({ '/metrics': metricsRoute(deps.registry) })
}

export type MetricsListener = ReturnType<typeof createMetricsListener>
