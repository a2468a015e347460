import { ValidationError, WebhookEndpointNotFoundError } from '../errors.ts'
import { decodeIdCursor, encodeIdCursor } from '../id-cursor.ts'
import { isUuid } from '../ids.ts'
import { generateSigningSecret } from '../outbound/webhook-signer.ts'
import type { EndpointRow, NewEndpoint, NotificationRepository } from './notification-repository.ts'

export type EndpointView = ReturnType<typeof toEndpointView>

/** The public shape of an endpoint: never its secret. */
export function toEndpointView (row: EndpointRow) {
  return {
    id: row.id,
    url: row.url,
    events: row.events,
    types: row.types,
    tags: row.tags,
    createdAt: row.createdAt.toISOString(),
  }
}

/** A tenant's notification endpoints and the delivery log of its tasks. */
export function createNotificationService (deps: {
  repo: NotificationRepository
  /** Seals the signing secret for storage (encrypted when TASKLANE_ENCRYPTION_KEY is set). */
  seal: (secret: string) => string
  /** Throws the task's 404 when the tenant has no such task. */
  assertTask: (tenant: string, id: string) => Promise<unknown>
}) {
  const { repo } = deps
  return {
    /** Creates an endpoint; its signing secret is in this answer and never again. */
    async create (tenant: string, input: NewEndpoint): Promise<EndpointView & { signingSecret: string }> {
      const url = new URL(input.url)
      if (url.username || url.password) throw new ValidationError([{ path: '/url', message: 'must not carry credentials' }])
      const dedupe = (list?: string[]) => (list ? [...new Set(list)] : undefined)
      const secret = generateSigningSecret()
      const row = await repo.createEndpoint(tenant, { url: url.href, events: dedupe(input.events)!, types: dedupe(input.types), tags: dedupe(input.tags) },
        deps.seal(secret))
      return { ...toEndpointView(row), signingSecret: secret }
    },

    async list (tenant: string, limit: number, cursor?: string) {
      const rows = await repo.listEndpoints(tenant, limit + 1, cursor === undefined ? undefined : decodeIdCursor(cursor))
      const items = rows.slice(0, limit)
      const last = items.at(-1)
      return { items: items.map(toEndpointView), nextCursor: rows.length > limit && last ? encodeIdCursor(last.id) : null }
    },

    async get (tenant: string, id: string): Promise<EndpointView> {
      const row = isUuid(id) ? await repo.getEndpoint(tenant, id) : undefined
      if (!row) throw new WebhookEndpointNotFoundError(id)
      return toEndpointView(row)
    },

    async delete (tenant: string, id: string): Promise<void> {
      if (!isUuid(id) || !(await repo.deleteEndpoint(tenant, id))) throw new WebhookEndpointNotFoundError(id)
    },

    async deliveries (tenant: string, taskId: string) {
      await deps.assertTask(tenant, taskId)
      return (await repo.deliveries(taskId)).map((d) => ({
        endpointId: d.endpointId, event: d.event, webhookId: d.webhookId, attempt: d.attempt, status: d.status, error: d.error, at: d.at.toISOString(),
      }))
    },
  }
}

export type NotificationService = ReturnType<typeof createNotificationService>
