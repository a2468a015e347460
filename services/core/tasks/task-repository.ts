import type postgres from 'postgres'
import { and, arrayContains, desc, eq, gte, inArray, lt, lte, type SQL } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
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
      if (f.createdAfter) where.push(gte(tasks.createdAt, f.createdAfter))
      if (f.createdBefore) where.push(lte(tasks.createdAt, f.createdBefore))
      if (f.beforeId) where.push(lt(tasks.id, f.beforeId))
      return db.select().from(tasks).where(and(...where)).orderBy(desc(tasks.id)).limit(f.limit)
    },

    async listAttempts (taskId: string) {
      return db.select().from(taskAttempts).where(eq(taskAttempts.taskId, taskId)).orderBy(taskAttempts.attempt)
    },
  }
}

export type TaskRepository = ReturnType<typeof createTaskRepository>
