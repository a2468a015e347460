import type postgres from 'postgres'
import type { TaskStatus } from './task-view.ts'

export type FinishedStatus = Extract<TaskStatus, 'completed' | 'failed' | 'cancelled'>
export const FINISHED_STATUSES: readonly FinishedStatus[] = ['completed', 'failed', 'cancelled']

export type PurgeChunk = { scanned: number, purged: number, lastId: string | undefined }

// Deleting a task deletes its child rows through their foreign keys (ON DELETE CASCADE):
// task_attempts today, and every table that later references tasks(id) the same way, so a new
// child table is one line in its own definition, not a change here. Each such foreign key
// needs an index led by its column, or every deleted task scans the child table (a test
// checks both for every table that references tasks).

/** The deletes of the purger: short statements over one tenant and status at a time. */
export function createTaskPurgeRepository (sql: postgres.Sql) {
  return {
    /** The (tenant, status) pairs that have finished tasks, from the stats counters (no scan of tasks). */
    async finishedGroups (): Promise<{ tenant: string, status: FinishedStatus }[]> {
      return sql<{ tenant: string, status: FinishedStatus }[]>`
        select tenant, status from task_counts
        where status in ('completed', 'failed', 'cancelled')
        group by tenant, status having sum(count) > 0
        order by tenant, status`
    },

    /**
     * Looks at up to `limit` tasks of the tenant in `status` with ids in (afterId, beforeId), in
     * id order (the tenant/status/id index), and deletes those finished more than `retentionMs`
     * ago by the database's clock. `beforeId` only narrows the range: a task finishes after it
     * is created, so none past it can be due. One statement, row locks on the deleted rows only.
     */
    async purgeChunk (tenant: string, status: FinishedStatus, afterId: string, beforeId: string,
      retentionMs: number, limit: number): Promise<PurgeChunk> {
      const [row] = await sql.unsafe<{ scanned: number, purged: number, last: string | null }[]>(`
        with chunk as (
          select id from tasks
          where tenant = $1 and status = $2 and id > $3::uuid and id < $4::uuid
          order by id limit $5
        ), gone as (
          delete from tasks t using chunk c
          where t.id = c.id and t.status = $2
            and t.finished_at < now() - make_interval(secs => $6::double precision / 1000)
          returning t.id
        )
        select (select count(*)::int from chunk) as scanned, (select count(*)::int from gone) as purged,
               (select id from chunk order by id desc limit 1) as last`,
      [tenant, status, afterId, beforeId, limit, retentionMs], { prepare: true })
      return { scanned: row!.scanned, purged: row!.purged, lastId: row!.last ?? undefined }
    },
  }
}

export type TaskPurgeRepository = ReturnType<typeof createTaskPurgeRepository>
