import type postgres from 'postgres'
import type { UnfinishedTask } from './transitions.ts'

// What the reconciler reads to find work a worker or Redis lost. The repairs themselves are
// transitions (transitions.ts: requeueLost, and the enqueue of a queued task).

const UNFINISHED_COLUMNS = `id, queue, type, priority, run_at as "runAt", max_attempts as "maxAttempts", attempts`
/** Below every UUID: where a keyset scan starts. */
export const FIRST_ID = '00000000-0000-0000-0000-000000000000'

// Drizzle makes this client hand timestamps over as text; callers get Dates.
const withDate = (row: UnfinishedTask): UnfinishedTask => ({ ...row, runAt: new Date(row.runAt) })

export function createTaskRecoveryRepository (sql: postgres.Sql) {
  return {
    /**
     * Tasks in `status` not touched for `olderThanMs`, in id order after `afterId`. Fresh rows
     * are left alone: their creator or worker is most likely still busy with them; so are
     * tasks still waiting for dependencies, which have no job until the last one finishes, and
     * held tasks, which fair sharing's admission loop dispatches (they have no job on purpose).
     * A running task whose attempt holds an open lease (a pull worker's, or a webhook attempt
     * waiting for callbacks) is the lease sweeper's to end, whatever its job says.
     */
    async listUntouched (status: 'queued' | 'running', olderThanMs: number, afterId: string, limit: number): Promise<UnfinishedTask[]> {
      const rows = await sql.unsafe<UnfinishedTask[]>(`
        select ${UNFINISHED_COLUMNS} from tasks
        where status = $1 and updated_at < now() - make_interval(secs => $2::double precision / 1000) and id > $3
          and blocked_count = 0 and not held
          and ($1 = 'queued' or not exists (select 1 from task_leases l where l.lease_id = tasks.lease_id and l.ended_at is null))
        order by id limit $4`, [status, olderThanMs, afterId, limit])
      return rows.map(withDate)
    },
  }
}

export type TaskRecoveryRepository = ReturnType<typeof createTaskRecoveryRepository>
