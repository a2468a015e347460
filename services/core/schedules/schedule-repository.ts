import { and, desc, eq, inArray, isNotNull, lt, lte, sql } from 'drizzle-orm'
import type { Db } from '../db/db-client.ts'
import { schedules, tasks, type NewScheduleRow, type NewTaskRow, type ScheduleRow, type TaskRow } from '../db/schema.ts'

type Tx = Parameters<Parameters<Db['transaction']>[0]>[0]
export type ScheduleTx = Tx

export type Claimed = { schedule: ScheduleRow, now: Date }

/** Reads and writes of schedules; every API query is scoped by tenant. */
export function createScheduleRepository (db: Db) {
  return {
    async insert (row: NewScheduleRow): Promise<ScheduleRow> {
      const [stored] = await db.insert(schedules).values(row).returning()
      return stored!
    },

    async findById (tenant: string, id: string): Promise<ScheduleRow | undefined> {
      const [row] = await db.select().from(schedules).where(and(eq(schedules.tenant, tenant), eq(schedules.id, id))).limit(1)
      return row
    },

    /** Newest first; `beforeId` is exclusive (keyset pagination over UUIDv7 ids). */
    async list (tenant: string, beforeId: string | undefined, limit: number): Promise<ScheduleRow[]> {
      const where = [eq(schedules.tenant, tenant)]
      if (beforeId) where.push(lt(schedules.id, beforeId))
      return db.select().from(schedules).where(and(...where)).orderBy(desc(schedules.id)).limit(limit)
    },

    async update (tenant: string, id: string, patch: Partial<NewScheduleRow>): Promise<ScheduleRow | undefined> {
      const [row] = await db.update(schedules).set({ ...patch, updatedAt: new Date() })
        .where(and(eq(schedules.tenant, tenant), eq(schedules.id, id))).returning()
      return row
    },

    async delete (tenant: string, id: string): Promise<boolean> {
      const rows = await db.delete(schedules).where(and(eq(schedules.tenant, tenant), eq(schedules.id, id))).returning({ id: schedules.id })
      return rows.length > 0
    },

    /** The nearest due times of every tenant, and how far each is from the database's clock (ms, <= 0 when due). */
    async nearest (limit: number): Promise<{ id: string, inMs: number }[]> {
      return db.select({ id: schedules.id, inMs: sql<number>`(extract(epoch from ${schedules.nextRunAt} - clock_timestamp()) * 1000)::float8` })
        .from(schedules).where(isNotNull(schedules.nextRunAt)).orderBy(schedules.nextRunAt).limit(limit)
    },

    /** The schedules whose due time has passed (oldest first), with the database's clock. */
    async overdue (limit: number): Promise<{ rows: ScheduleRow[], now: Date }> {
      const rows = await db.select({ schedule: schedules, nowMs: sql<number>`(extract(epoch from clock_timestamp()) * 1000)::float8` })
        .from(schedules).where(lte(schedules.nextRunAt, sql`clock_timestamp()`)).orderBy(schedules.nextRunAt).limit(limit)
      return { rows: rows.map((r) => r.schedule), now: new Date(rows[0]?.nowMs ?? Date.now()) }
    },

    transaction: <T>(fn: (tx: Tx) => Promise<T>): Promise<T> => db.transaction(fn),

    /**
     * Locks a schedule whose due time has come, with the database's clock; undefined when it is
     * not due, paused, gone, or another replica holds it (that replica is firing it).
     */
    async claimDue (tx: Tx, id: string): Promise<Claimed | undefined> {
      const [row] = await tx.select({ schedule: schedules, nowMs: sql<number>`(extract(epoch from clock_timestamp()) * 1000)::float8` })
        .from(schedules)
        .where(and(eq(schedules.id, id), eq(schedules.paused, false), lte(schedules.nextRunAt, sql`clock_timestamp()`)))
        .for('update', { skipLocked: true })
      return row ? { schedule: row.schedule, now: new Date(row.nowMs) } : undefined
    },

    async lockForTrigger (tx: Tx, tenant: string, id: string): Promise<ScheduleRow | undefined> {
      const [row] = await tx.select().from(schedules).where(and(eq(schedules.tenant, tenant), eq(schedules.id, id))).for('update')
      return row
    },

    /** True while the task is queued or running. */
    async isUnfinished (tx: Tx, taskId: string): Promise<boolean> {
      const [row] = await tx.select({ id: tasks.id }).from(tasks)
        .where(and(eq(tasks.id, taskId), inArray(tasks.status, ['queued', 'running']))).limit(1)
      return row !== undefined
    },

    /** Stores a schedule's task; undefined when that schedule already has a task for that due time. */
    async insertTask (tx: Tx, row: NewTaskRow): Promise<TaskRow | undefined> {
      const [stored] = await tx.insert(tasks).values(row).onConflictDoNothing().returning()
      return stored
    },

    /** Moves a claimed schedule on; conditional on the due time it was claimed at. */
    async advance (tx: Tx, id: string, claimedAt: Date, patch: Pick<NewScheduleRow, 'nextRunAt' | 'lastRunAt' | 'lastTaskId'>): Promise<boolean> {
      const rows = await tx.update(schedules).set({ ...patch, updatedAt: new Date() })
        .where(and(eq(schedules.id, id), eq(schedules.nextRunAt, claimedAt))).returning({ id: schedules.id })
      return rows.length > 0
    },

    async setLastTask (tx: Tx, id: string, taskId: string): Promise<void> {
      await tx.update(schedules).set({ lastTaskId: taskId, updatedAt: new Date() }).where(eq(schedules.id, id))
    },
  }
}

export type ScheduleRepository = ReturnType<typeof createScheduleRepository>
