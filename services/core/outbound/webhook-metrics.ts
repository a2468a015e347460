import { Counter, Histogram, type Registry } from 'prom-client'
import { OutboundError } from './outbound-error.ts'

export type WebhookKind = 'executor' | 'notification'
export const WEBHOOK_OUTCOMES = ['success', 'accepted', 'retryable_status', 'rejected', 'timeout', 'network', 'forbidden'] as const
export type WebhookOutcome = typeof WEBHOOK_OUTCOMES[number]

/** The outcome label of a request that got no answer. */
export function outcomeOfError (err: unknown): WebhookOutcome {
  if (err instanceof OutboundError) return err.code === 'TIMEOUT' ? 'timeout' : err.code === 'FORBIDDEN_ADDRESS' ? 'forbidden' : 'network'
  return 'network'
}

/** tasklane_webhook_requests_total{kind,outcome} and tasklane_webhook_duration_seconds{kind}. */
export function createWebhookMetrics (registry: Registry) {
  const requests = new Counter({
    name: 'tasklane_webhook_requests_total',
    help: 'Requests to webhook executors and notification endpoints, by kind and outcome',
    labelNames: ['kind', 'outcome'] as const,
    registers: [registry],
  })
  const duration = new Histogram({
    name: 'tasklane_webhook_duration_seconds',
    help: 'Time from sending a webhook request to its answer (or to giving up on it), by kind',
    labelNames: ['kind'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  })
  for (const kind of ['executor', 'notification'] as const) {
    duration.zero({ kind })
    for (const outcome of WEBHOOK_OUTCOMES) requests.inc({ kind, outcome }, 0)
  }
  return {
    observe (kind: WebhookKind, outcome: WebhookOutcome, seconds: number): void {
      requests.inc({ kind, outcome })
      duration.observe({ kind }, seconds)
    },
  }
}

export type WebhookMetrics = ReturnType<typeof createWebhookMetrics>
