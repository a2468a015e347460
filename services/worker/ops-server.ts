import type { Registry } from 'prom-client'
import { createInternalHttpServer, healthzRoute, metricsRoute, readyzRoute } from '../core/internal-http-server.ts'
import type { Readiness } from '../core/readiness.ts'

/** The worker's internal port: /metrics for Prometheus, /healthz and /readyz for the kubelet. */
export function createOpsServer (deps: { registry: Registry, readiness: Readiness }) {
  return createInternalHttpServer({
    '/metrics': metricsRoute(deps.registry),
    '/healthz': healthzRoute,
    '/readyz': readyzRoute(deps.readiness),
  })
}
