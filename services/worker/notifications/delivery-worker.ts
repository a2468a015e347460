import { UnrecoverableError, Worker, type Job } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../../core/log.ts'
import { DELIVERY_BACKOFF, DELIVERY_QUEUE, retryDelayOf, type DeliveryJob } from '../../core/notifications/delivery-queue.ts'
import type { NotificationRepository } from '../../core/notifications/notification-repository.ts'
import type { OutboundClient } from '../../core/outbound/outbound-client.ts'
import { OutboundError } from '../../core/outbound/outbound-error.ts'
import { outcomeOfError, type WebhookMetrics } from '../../core/outbound/webhook-metrics.ts'
import { signedHeaders } from '../../core/outbound/webhook-signer.ts'
import { USER_AGENT } from '../../core/outbound/user-agent.ts'

const ERROR_BODY_BYTES = 1024

/**
 * Sends notification deliveries from their own queue with their own concurrency: a POST of
 * the event, signed (Standard Webhooks), the same webhook-id on every try; anything but a 2xx
 * is tried again on the configured schedule. Each try is recorded on the task.
 */
export function createDeliveryWorker (deps: {
  connection: Redis
  prefix: string
  concurrency: number
  timeoutMs: number
  retryDelays: readonly number[]
  repo: Pick<NotificationRepository, 'endpointById' | 'recordAttempt'>
  openSecret: (sealed: string) => string
  outbound: OutboundClient
  metrics: WebhookMetrics
  log: Logger
}) {
  // Stopping cuts the requests in flight, so the worker's close does not wait out their timeouts.
  const stopping = new AbortController()

  async function deliver (job: Job<DeliveryJob>): Promise<void> {
    const d = job.data
    const endpoint = await deps.repo.endpointById(d.endpointId)
    // A deleted endpoint is owed nothing more.
    if (!endpoint) return
    const attempt = job.attemptsMade + 1
    const started = performance.now()
    let status: number | null = null
    let error: string | null = null
    let retryable = true
    try {
      const response = await deps.outbound.send({
        method: 'POST',
        url: endpoint.url,
        headers: {
          'content-type': 'application/json',
          'user-agent': USER_AGENT,
          ...signedHeaders([deps.openSecret(endpoint.secret)], d.deliveryId, d.body),
        },
        body: d.body,
        timeoutMs: deps.timeoutMs,
        signal: stopping.signal,
        bodyCapBytes: ERROR_BODY_BYTES,
      })
      status = response.status
      const ok = status >= 200 && status < 300
      deps.metrics.observe('notification', ok ? 'success' : status === 408 || status === 429 || status >= 500 ? 'retryable_status' : 'rejected',
        (performance.now() - started) / 1000)
      if (!ok) error = `answered ${status}${response.text ? `: ${response.text}` : ''}`
    } catch (err) {
      // Cut by a shutdown: not the endpoint's fault, and nothing is recorded.
      if (stopping.signal.aborted) throw err
      deps.metrics.observe('notification', outcomeOfError(err), (performance.now() - started) / 1000)
      if (!(err instanceof OutboundError)) throw err
      error = `${err.code}: ${err.message}`
      // An address the policy refuses stays refused: trying again for three days helps nobody.
      retryable = err.retryable
    }
    await deps.repo.recordAttempt({ taskId: d.taskId, endpointId: d.endpointId, event: d.event, webhookId: d.deliveryId, attempt, status, error })
    if (error === null) return
    const last = !retryable || attempt >= (job.opts.attempts ?? 1)
    deps.log.warn({ deliveryId: d.deliveryId, taskId: d.taskId, endpointId: d.endpointId, attempt, status, last }, 'notification delivery failed')
    throw retryable ? new Error(error) : new UnrecoverableError(error)
  }

  const worker = new Worker<DeliveryJob>(DELIVERY_QUEUE, deliver, {
    connection: deps.connection,
    prefix: deps.prefix,
    concurrency: deps.concurrency,
    // A delivery holds its lock for its request's timeout at most; twice that is plenty.
    lockDuration: Math.max(30_000, deps.timeoutMs * 2),
    settings: {
      backoffStrategy: (attemptsMade, type) => (type === DELIVERY_BACKOFF ? retryDelayOf(deps.retryDelays, attemptsMade) : 1_000),
    },
  })
  worker.on('error', (err) => deps.log.warn({ err }, 'delivery worker error'))
  return {
    /** Cuts the deliveries in flight (each is tried again later, same webhook-id) and waits for them to let go. */
    async close (): Promise<void> {
      stopping.abort(new Error('the worker is stopping'))
      await worker.close()
    },
  }
}
