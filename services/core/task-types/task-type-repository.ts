import type postgres from 'postgres'
import type { TaskDefaults } from './task-type.ts'
import type { Executor, RateLimit } from './registered-type.ts'

/** Changes to any tenant's types are announced here, in the transaction that makes them. */
export const TASK_TYPES_CHANNEL = 'tasklane_task_types'

export type TaskTypeRecord = {
  tenant: string
  name: string
  version: number
  queue: string
  description: string
  payloadSchema: unknown
  resultSchema: unknown
  defaults: TaskDefaults
  concurrency: number | null
  rateLimit: RateLimit | null
  executor: Executor
  createdAt: Date
  updatedAt: Date
  deletedAt: Date | null
}

export type TaskTypeWrite = Omit<TaskTypeRecord, 'version' | 'createdAt' | 'updatedAt' | 'deletedAt'>

const COLUMNS = `tenant, name, version, queue, description, payload_schema as "payloadSchema",
  result_schema as "resultSchema", defaults, concurrency, rate_limit as "rateLimit", executor,
  created_at as "createdAt", updated_at as "updatedAt", deleted_at as "deletedAt"`

// Drizzle makes this client hand timestamps over as text.
const toRecord = (row: Record<string, unknown>): TaskTypeRecord => ({
  ...(row as TaskTypeRecord),
  createdAt: new Date(row.createdAt as string),
  updatedAt: new Date(row.updatedAt as string),
  deletedAt: row.deletedAt == null ? null : new Date(row.deletedAt as string),
})
const json = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value))

export type Secrets = { current: string | null, previous: string | null, previousExpiresAt: Date | null }

export function createTaskTypeRepository (sql: postgres.Sql) {
  const notify = (tx: postgres.TransactionSql, tenant: string, name: string) =>
    tx`select pg_notify(${TASK_TYPES_CHANNEL}, ${JSON.stringify({ tenant, name })})`

  return {
    /** Every type of every tenant, deleted ones included (their tasks may still be running). */
    async listAll (): Promise<TaskTypeRecord[]> {
      return (await sql.unsafe(`select ${COLUMNS} from task_types`)).map(toRecord)
    },
    async find (tenant: string, name: string): Promise<TaskTypeRecord | undefined> {
      const rows = await sql.unsafe(`select ${COLUMNS} from task_types where tenant = $1 and name = $2`, [tenant, name])
      return rows[0] && toRecord(rows[0])
    },

    /**
     * Creates the type (version 1) or replaces it (version + 1; a deleted one comes back).
     * `limit` is checked under a per-tenant lock, so concurrent creates cannot pass it together.
     * Returns undefined when the tenant already has `limit` live types.
     */
    async upsert (type: TaskTypeWrite, limit: number, secret: string | null):
      Promise<{ record: TaskTypeRecord, created: boolean, secret: string | null } | undefined> {
      return sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext(${`task_types:${type.tenant}`}))`
        const [existing] = await tx<{ live: boolean, secret: string | null }[]>`
          select deleted_at is null as live, signing_secret as secret from task_types
          where tenant = ${type.tenant} and name = ${type.name} for update`
        if (!existing?.live) {
          const [count] = await tx<{ n: number }[]>`
            select count(*)::int as n from task_types where tenant = ${type.tenant} and deleted_at is null`
          if ((count?.n ?? 0) >= limit) return undefined
        }
        // A webhook type keeps its secret across replaces; one that becomes pull drops it.
        const keep = type.executor.kind === 'webhook' ? existing?.secret ?? secret : null
        const rows = await tx.unsafe(`
          insert into task_types (tenant, name, version, queue, description, payload_schema, result_schema, defaults,
                                  concurrency, rate_limit, executor, signing_secret)
          values ($1, $2, 1, $3, $4, $5::jsonb, $6::jsonb, $7::jsonb, $8, $9::jsonb, $10::jsonb, $11)
          on conflict (tenant, name) do update set
            version = task_types.version + 1, queue = excluded.queue, description = excluded.description,
            payload_schema = excluded.payload_schema, result_schema = excluded.result_schema,
            defaults = excluded.defaults, concurrency = excluded.concurrency, rate_limit = excluded.rate_limit,
            executor = excluded.executor, signing_secret = excluded.signing_secret,
            previous_signing_secret = case when excluded.signing_secret is null then null else task_types.previous_signing_secret end,
            previous_secret_expires_at = case when excluded.signing_secret is null then null else task_types.previous_secret_expires_at end,
            updated_at = now(), deleted_at = null
          returning ${COLUMNS}`, [type.tenant, type.name, type.queue, type.description, json(type.payloadSchema),
          json(type.resultSchema), json(type.defaults), type.concurrency, json(type.rateLimit), json(type.executor), keep])
        await notify(tx, type.tenant, type.name)
        const created = !existing?.live
        // The secret is shown when the webhook type is created (or first becomes a webhook type), never again.
        return { record: toRecord(rows[0]!), created, secret: keep !== null && keep !== existing?.secret ? keep : null }
      })
    },

    /** Marks the type deleted; false when it has no live row. */
    async softDelete (tenant: string, name: string): Promise<boolean> {
      return sql.begin(async (tx) => {
        const rows = await tx`update task_types set deleted_at = now(), updated_at = now()
          where tenant = ${tenant} and name = ${name} and deleted_at is null returning name`
        if (rows.length > 0) await notify(tx, tenant, name)
        return rows.length > 0
      })
    },

    /** A new current secret; the old one keeps signing until `previousUntil`. Undefined: no live webhook type. */
    async rotateSecret (tenant: string, name: string, secret: string, previousUntil: Date): Promise<TaskTypeRecord | undefined> {
      return sql.begin(async (tx) => {
        const rows = await tx.unsafe(`
          update task_types set previous_signing_secret = signing_secret, previous_secret_expires_at = $3,
                 signing_secret = $4, updated_at = now()
          where tenant = $1 and name = $2 and deleted_at is null and executor->>'kind' = 'webhook'
          returning ${COLUMNS}`, [tenant, name, previousUntil.toISOString(), secret])
        if (rows.length > 0) await notify(tx, tenant, name)
        return rows[0] && toRecord(rows[0])
      })
    },

    /** The secrets a webhook executor signs with (the previous one only until it retires). */
    async secrets (tenant: string, name: string): Promise<Secrets | undefined> {
      const [row] = await sql<{ current: string | null, previous: string | null, until: string | null }[]>`
        select signing_secret as current,
               case when previous_secret_expires_at > now() then previous_signing_secret end as previous,
               case when previous_secret_expires_at > now() then previous_secret_expires_at end as until
        from task_types where tenant = ${tenant} and name = ${name}`
      return row && { current: row.current, previous: row.previous, previousExpiresAt: row.until ? new Date(row.until) : null }
    },
  }
}

export type TaskTypeRepository = ReturnType<typeof createTaskTypeRepository>
