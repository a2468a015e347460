import { collectDefaultMetrics, Registry } from 'prom-client'

// prom-client exports these three gauges with a counter's `_total` suffix, which Prometheus'
// own lint (`promtool check metrics`) rejects; the per-type gauges without the suffix stay.
const MISNAMED_DEFAULTS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/** One registry per process, with the process defaults (event-loop lag, heap, GC, CPU). */
export function createMetricsRegistry (labels: Record<string, string>): Registry {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  collectDefaultMetrics({ register: registry })
  for (const name of MISNAMED_DEFAULTS) registry.removeSingleMetric(name)
  return registry
}
