import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { Histogram, type Registry } from 'prom-client'

// Request latencies of a task API: most answers take milliseconds, a slow database seconds.
const BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/**
 * `http_request_duration_seconds{method, route, status_code}` in the API's registry, labelled
 * by route pattern (`/v1/tasks/:id`), never by raw URL, so ids cannot explode the label set;
 * requests that match no route share the route label `unmatched`. The registry is exposed on
 * METRICS_PORT by the metrics listener.
 *
 * One observation when the response is sent, timed by Fastify's own clock (reply.elapsedTime).
 * A timer started per request in an onRequest hook and kept until the response (as
 * fastify-metrics does) cost a fiftieth of the API's allocations under load.
 */
export default fp(async function httpMetrics (app: FastifyInstance, options: { registry: Registry }) {
  const duration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'API request duration by route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: BUCKETS,
    registers: [options.registry],
  })
  app.addHook('onResponse', (request, reply, done) => {
    duration.observe({ method: request.method, route: request.routeOptions.url ?? 'unmatched', status_code: reply.statusCode }, reply.elapsedTime / 1000)
    done()
  })
}, { name: 'http-metrics' })
