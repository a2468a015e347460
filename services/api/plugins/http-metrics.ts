import type { FastifyInstance } from 'fastify'
import fastifyMetricsModule from 'fastify-metrics'
import fp from 'fastify-plugin'
import * as promClient from 'prom-client'
import type { Registry } from 'prom-client'

// A CommonJS module compiled from ESM: Node hands its exports object over as the default.
const fastifyMetrics = fastifyMetricsModule.default

// Request latencies of a task API: most answers take milliseconds, a slow database seconds.
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * `http_request_duration_seconds{method, route, status_code}` in the API's registry, labelled
 * by route pattern (`/v1/tasks/:id`), never by raw URL, so ids cannot explode the label set;
 * requests that match no route share the route label `unmatched`. fastify-metrics serves no
 * endpoint here: the registry is exposed on METRICS_PORT by the metrics listener.
 */
export default fp(async function httpMetrics (app: FastifyInstance, options: { registry: Registry }) {
  const { registry } = options
  await app.register(fastifyMetrics, {
    promClient,
    endpoint: null,
    defaultMetrics: { enabled: false },
    routeMetrics: {
      enabled: { histogram: true, summary: false },
      registeredRoutesOnly: false,
      invalidRouteGroup: 'unmatched',
      overrides: {
        histogram: { name: 'http_request_duration_seconds', help: 'API request duration by route pattern and status code', buckets: BUCKETS, registers: [registry] },
        // The plugin always constructs its summary; with no registry it is never exported.
        summary: { registers: [] },
      },
    },
  })
}, { name: 'http-metrics' })
