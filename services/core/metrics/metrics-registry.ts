import { collectDefaultMetrics, Registry } from 'prom-client'

/** One registry per process, with the process defaults (event-loop lag, heap, GC, CPU). */
export function createMetricsRegistry (labels: Record<string, string>): Registry {
  const registry = new Registry()
  registry.setDefaultLabels(labels)
  collectDefaultMetrics({ register: registry })
  return registry
}
