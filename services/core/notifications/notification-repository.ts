import type postgres from 'postgres'
import { v7 as uuidv7 } from 'uuid'
import { TASK_RETURNING, toTaskRow } from '../tasks/task-row-mapper.ts'
import { toTaskView, type TaskView } from '../tasks/task-view.ts'

export type EndpointRow = {
  id: string, tenant: string, url: string, events: string[], types: string[] | null, tags: string[] | null, secret: string, createdAt: Date
}
export type NewEndpoint = { url: string, events: string[], types?: string[] | undefined, tags?: string[] | undefined }
/** An outbox row with what a delivery needs: the task as it is now, and the endpoint. */
export type OwedDelivery = { id: string, tenant: string, taskId: string, endpointId: string, event: string, createdAt: Date }
export type DeliveryAttempt = {
  taskId: string, endpointId: string, event: string, webhookId: string, attempt: number, status: number | null, error: string | null
}

const ENDPOINT_COLUMNS = `id, tenant, url, events, types, tags, secret, created_at as "createdAt"`
const withDate = <T extends { createdAt: Date | string }> (row: T): T => ({ ...row, createdAt: new Date(row.createdAt) })

/** Endpoints, the outbox and the delivery log; every tenant-facing read is scoped by tenant. */
export function createNotificationRepository (sql: postgres.Sql) {
  return {
    async createEndpoint (tenant: string, input: NewEndpoint, secret: string): Promise<EndpointRow> {
      const rows = await sql.unsafe<EndpointRow[]>(`
        insert into webhook_endpoints (id, tenant, url, events, types, tags, secret)
        values ($1, $2, $3, $4::text[], $5::text[], $6::text[], $7)
        returning ${ENDPOINT_COLUMNS}`, [uuidv7(), tenant, input.url, input.events, input.types ?? null, input.tags ?? null, secret] as never[])
      return withDate(rows[0]!)
    },

    async listEndpoints (tenant: string, limit: number, afterId?: string): Promise<EndpointRow[]> {
      const rows = await sql.unsafe<EndpointRow[]>(`
        select ${ENDPOINT_COLUMNS} from webhook_endpoints
        where tenant = $1 and ($2::uuid is null or id > $2::uuid) order by id limit $3`, [tenant, afterId ?? null, limit])
      return rows.map(withDate)
    },

    async getEndpoint (tenant: string, id: string): Promise<EndpointRow | undefined> {
      const rows = await sql.unsafe<EndpointRow[]>(`select ${ENDPOINT_COLUMNS} from webhook_endpoints where tenant = $1 and id = $2`, [tenant, id])
      return rows[0] ? withDate(rows[0]) : undefined
    },

    /** The endpoint a delivery goes to, whatever its tenant (the delivery already names it). */
    async endpointById (id: string): Promise<EndpointRow | undefined> {
      const rows = await sql.unsafe<EndpointRow[]>(`select ${ENDPOINT_COLUMNS} from webhook_endpoints where id = $1`, [id])
      return rows[0] ? withDate(rows[0]) : undefined
    },

    async deleteEndpoint (tenant: string, id: string): Promise<boolean> {
      const rows = await sql.unsafe(`delete from webhook_endpoints where tenant = $1 and id = $2 returning id`, [tenant, id])
      return rows.length > 0
    },

    /** The oldest owed deliveries, at most `limit`. */
    async owed (limit: number): Promise<OwedDelivery[]> {
      const rows = await sql.unsafe<OwedDelivery[]>(`
        select id, tenant, task_id as "taskId", endpoint_id as "endpointId", event, created_at as "createdAt"
        from notification_outbox order by created_at, id limit $1`, [limit])
      return rows.map(withDate)
    },

    /** The public views of these tasks, by id (a deleted task is absent). */
    async taskViews (ids: string[]): Promise<Map<string, TaskView>> {
      const rows = await sql.unsafe(`select ${TASK_RETURNING} from tasks where id = any($1::uuid[])`, [ids] as never[])
      return new Map(rows.map((raw) => { const view = toTaskView(toTaskRow(raw)); return [view.id, view] }))
    },

    /** Outbox rows whose jobs are on the delivery queue now. */
    async handedOver (ids: string[]): Promise<void> {
      if (ids.length > 0) await sql.unsafe(`delete from notification_outbox where id = any($1::uuid[])`, [ids] as never[])
    },

    /** Records one attempt; nothing when the task was deleted meanwhile (its log went with it). */
    async recordAttempt (a: DeliveryAttempt): Promise<void> {
      await sql.unsafe(`
        insert into webhook_deliveries (task_id, endpoint_id, event, webhook_id, attempt, status, error)
        select $1, $2, $3, $4, $5, $6, $7 where exists (select 1 from tasks where id = $1)`,
      [a.taskId, a.endpointId, a.event, a.webhookId, a.attempt, a.status, a.error])
    },

    async deliveries (taskId: string): Promise<(DeliveryAttempt & { at: Date })[]> {
      const rows = await sql.unsafe<(DeliveryAttempt & { at: Date })[]>(`
        select task_id as "taskId", endpoint_id as "endpointId", event, webhook_id as "webhookId", attempt, status, error, at
        from webhook_deliveries where task_id = $1 order by id`, [taskId])
      return rows.map((r) => ({ ...r, at: new Date(r.at) }))
    },
  }
}

export type NotificationRepository = ReturnType<typeof createNotificationRepository>
