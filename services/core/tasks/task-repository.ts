import type postgres from 'postgres'
import { and, arrayContains, desc, eq, gte, inArray, lt, lte, type SQL } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { firstIdAt } from '../ids.ts'
import { taskAttempts, tasks, type NewTaskRow, type TaskRow } from '../db/schema.ts'
import { createWriteBatcher } from '../write-batcher.ts'
import { createTaskInsertStatement, isUniqueViolation } from './task-insert-statement.ts'
import type { TaskStatus } from './task-view.ts'

export type TaskFilters = {
  status?: TaskStatus | undefined
  type?: string | undefined
  queue?: string | undefined
  tag?: string | undefined
  createdAfter?: Date | undefined
  createdBefore?: Date | undefined
  /** Exclusive: only ids older than this one (keyset pagination, newest first). */
  beforeId?: string | undefined
  limit: number
}

// How far a task's id time may be from its created_at (both come from the API host's clock,
// moments apart): the id range is widened by this much and created_at decides.
const ID_TIME_SLACK_MS = 1_000

/** Reads and writes of task rows for the API side; every query is scoped by tenant. */
export function createTaskRepository (db: Db) {
  // Inserts arriving together (concurrent POSTs) share one multi-row statement; each call's
  // rows stay one unit, so a batch request is still stored all or nothing.
  const client = (db as Db & { $client: postgres.Sql }).$client
  const insertRows = createTaskInsertStatement(client)
  const insertAllRows = createTaskInsertStatement(client, 'fail')
  const insertTogether = createWriteBatcher({
    run: async (groups: NewTaskRow[][]) => {
      const stored = await insertRows(groups.flat())
      let at = 0
      return groups.map((group) => stored.slice(at, (at += group.length)))
    },
    weight: (group) => group.length,
    maxBatch: 1_000,
  })

  return {
    /**
     * Inserts new tasks. Rows whose idempotency key the tenant already used are skipped
     * (the unique index arbitrates concurrent requests); the caller looks those up.
     */
    async insert (rows: NewTaskRow[], tx: Db = db): Promise<TaskRow[]> {
      if (rows.length === 0) return []
      if (tx !== db) return tx.insert(tasks).values(rows).onConflictDoNothing().returning()
      const stored = await insertTogether(rows)
      return stored.filter((row): row is TaskRow => row !== undefined)
    },

    /**
     * Inserts rows all or nothing in one statement (no transaction needed): undefined, and
     * nothing stored, when one of their idempotency keys is taken already.
     */
    async insertAll (rows: NewTaskRow[]): Promise<TaskRow[] | undefined> {
      if (rows.length === 0) return []
      try {
        return (await insertAllRows(rows)) as TaskRow[]
      } catch (err) {
        if (isUniqueViolation(err)) return undefined
        throw err
      }
    },

    /**
     * Frees the tenant's keys among `keys` that were taken more than `ttlMs` ago (by the
     * database's clock), so that they create new tasks; the old tasks stay, keyless.
     * Returns how many were freed.
     */
    async freeExpiredKeys (tenant: string, keys: string[], ttlMs: number): Promise<number> {
      const rows = await client.unsafe(`
        update tasks set idempotency_key = null, request_hash = null
        where tenant = $1 and idempotency_key = any($2::text[])
          and created_at < now() - make_interval(secs => $3::double precision / 1000)
        returning id`, [tenant, keys, ttlMs])
      return rows.length
    },

    async findByIdempotencyKey (tenant: string, key: string): Promise<TaskRow | undefined> {
      const [row] = await db.select().from(tasks)
        .where(and(eq(tasks.tenant, tenant), eq(tasks.idempotencyKey, key))).limit(1)
      return row
    },

    /** The tasks stored under these keys, in the order of `keys`. */
    async findByIdempotencyKeys (tenant: string, keys: string[]): Promise<TaskRow[]> {
      if (keys.length === 0) return []
      const rows = await db.select().from(tasks)
        .where(and(eq(tasks.tenant, tenant), inArray(tasks.idempotencyKey, keys)))
      const order = new Map(keys.map((k, i) => [k, i]))
      return rows.sort((a, b) => order.get(a.idempotencyKey!)! - order.get(b.idempotencyKey!)!)
    },

    async findById (tenant: string, id: string): Promise<TaskRow | undefined> {
      const [row] = await db.select().from(tasks).where(and(eq(tasks.tenant, tenant), eq(tasks.id, id))).limit(1)
      return row
    },

    async list (tenant: string, f: TaskFilters): Promise<TaskRow[]> {
      const where: SQL[] = [eq(tasks.tenant, tenant)]
      if (f.status) where.push(eq(tasks.status, f.status))
      if (f.type) where.push(eq(tasks.type, f.type))
      if (f.queue) where.push(eq(tasks.queue, f.queue))
      if (f.tag) where.push(arrayContains(tasks.tags, [f.tag]))
      // A task's UUIDv7 id carries its creation time (taken within a millisecond of created_at),
      // so a time bound is also a range of the index's id column: the scan starts and stops
      // there instead of filtering every newer or older row. The created_at test keeps it exact.
      if (f.createdAfter) where.push(gte(tasks.id, firstIdAt(f.createdAfter.getTime() - ID_TIME_SLACK_MS)), gte(tasks.createdAt, f.createdAfter))
      if (f.createdBefore) where.push(lt(tasks.id, firstIdAt(f.createdBefore.getTime() + ID_TIME_SLACK_MS)), lte(tasks.createdAt, f.createdBefore))
      if (f.beforeId) where.push(lt(tasks.id, f.beforeId))
      return db.select().from(tasks).where(and(...where)).orderBy(desc(tasks.id)).limit(f.limit)
    },

    async listAttempts (taskId: string) {
      return db.select().from(taskAttempts).where(eq(taskAttempts.taskId, taskId)).orderBy(taskAttempts.attempt)
    },
  }
}

export type TaskRepository = ReturnType<typeof createTaskRepository>
