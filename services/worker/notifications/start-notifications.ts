import { Queue } from 'bullmq'
import type { Redis } from 'ioredis'
import type postgres from 'postgres'
import type { Registry } from 'prom-client'
import type { Config } from '../../core/config.ts'
import type { Logger } from '../../core/log.ts'
import { DELIVERY_QUEUE, type DeliveryJob } from '../../core/notifications/delivery-queue.ts'
import { createNotificationRepository } from '../../core/notifications/notification-repository.ts'
import type { OutboundClient } from '../../core/outbound/outbound-client.ts'
import type { WebhookMetrics } from '../../core/outbound/webhook-metrics.ts'
import { createRedisConnection } from '../../core/queues/redis-connection.ts'
import { createDeliveryWorker } from './delivery-worker.ts'
import { createOutboxSender } from './outbox-sender.ts'

/** The worker's part in notifications: the outbox sender loop and the delivery queue's worker. */
export function startNotifications (deps: {
  config: Config
  sql: postgres.Sql
  producer: Redis
  outbound: OutboundClient
  metrics: WebhookMetrics
  registry: Registry
  log: Logger
  workerId: string
  /** The stored (sealed) signing secret, opened. */
  openSecret: (sealed: string) => string
}) {
  const { config } = deps
  const log = deps.log.child({ component: 'notifications' })
  const repo = createNotificationRepository(deps.sql)
  const queue = new Queue<DeliveryJob>(DELIVERY_QUEUE, { connection: deps.producer, prefix: config.TASKLANE_QUEUE_PREFIX })
  queue.on('error', (err) => log.warn({ err }, 'delivery queue error'))
  const sender = createOutboxSender({
    repo, views: repo.taskViews, queue, retryDelays: config.notifyRetryDelays, intervalMs: config.TASKLANE_OUTBOX_INTERVAL_MS, registry: deps.registry, log,
  })
  sender.start()
  const connection = config.TASKLANE_NOTIFY_CONCURRENCY > 0
    ? createRedisConnection(config.REDIS_URL, 'consumer', `tasklane-worker:${deps.workerId}:notifications`)
    : undefined
  const worker = connection && createDeliveryWorker({
    connection, prefix: config.TASKLANE_QUEUE_PREFIX, concurrency: config.TASKLANE_NOTIFY_CONCURRENCY, timeoutMs: config.TASKLANE_NOTIFY_TIMEOUT_MS,
    retryDelays: config.notifyRetryDelays, repo, openSecret: deps.openSecret, outbound: deps.outbound, metrics: deps.metrics, log,
  })
  return {
    sender,
    async stop (): Promise<void> {
      await sender.stop()
      await worker?.close()
      connection?.disconnect()
      await queue.close()
    },
  }
}
