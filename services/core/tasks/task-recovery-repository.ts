import type postgres from 'postgres'
import type { Priority } from '../task-types/task-type.ts'

// The writes that repair work a worker or Redis lost. Like every other transition they name
// the state and the attempt they expect, so a worker that is alive after all (and finishes)
// and a repair racing it cannot both take effect.

/** What the reconciler needs to look a task's job up in Redis and enqueue it again. */
export type UnfinishedTask = {
  id: string
  queue: string
  type: string
  priority: Priority
  runAt: Date
  maxAttempts: number
  attempts: number
}

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
     * tasks still waiting for dependencies, which have no job until the last one finishes.
     */
    async listUntouched (status: 'queued' | 'running', olderThanMs: number, afterId: string, limit: number): Promise<UnfinishedTask[]> {
      const rows = await sql.unsafe<UnfinishedTask[]>(`
        select ${UNFINISHED_COLUMNS} from tasks
        where status = $1 and updated_at < now() - make_interval(secs => $2::double precision / 1000) and id > $3
          and blocked_count = 0
        order by id limit $4`, [status, olderThanMs, afterId, limit])
      return rows.map(withDate)
    },

    /**
     * A running task whose worker is gone (its job vanished or ended in Redis) goes back to
     * queued; the attempt it was on is closed as lost. Undefined when the task moved on.
     */
    async requeueLost (taskId: string, attempt: number, olderThanMs: number): Promise<UnfinishedTask | undefined> {
      const rows = await sql.unsafe<UnfinishedTask[]>(`
        with requeued as (
          update tasks set status = 'queued', worker_id = null, updated_at = now()
          where id = $1 and status = 'running' and attempts = $2
            and updated_at < now() - make_interval(secs => $3::double precision / 1000)
          returning *
        ), lost as (
          update task_attempts a set outcome = 'lost', finished_at = now(),
                 duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int,
                 error = '{"message":"the worker running this attempt stopped","code":"WORKER_LOST"}'
          from requeued r where a.task_id = r.id and a.outcome = 'running'
        )
        select ${UNFINISHED_COLUMNS} from requeued`, [taskId, attempt, olderThanMs])
      return rows[0] && withDate(rows[0])
    },

    /**
     * A stopping worker gives back an attempt it cannot finish within its grace period: the
     * task is queued again at once and the attempt is closed as released.
     */
    async release (taskId: string, attempt: number, durationMs: number): Promise<boolean> {
      const rows = await sql.unsafe(`
        with released as (
          update tasks set status = 'queued', worker_id = null, updated_at = now()
          where id = $1 and status = 'running' and attempts = $2
          returning id
        )
        update task_attempts set outcome = 'released', finished_at = now(), duration_ms = $3,
               error = '{"message":"the worker stopped before this attempt finished; the task was queued again","code":"WORKER_SHUTDOWN"}'
        where task_id = (select id from released) and attempt = $2
        returning task_id`, [taskId, attempt, durationMs])
      return rows.length > 0
    },
  }
}

export type TaskRecoveryRepository = ReturnType<typeof createTaskRecoveryRepository>
