import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, toTaskRow } from './task-row-mapper.ts'
import { owedNotificationsCte } from '../notifications/owed-notifications.ts'
import type { TaskError } from './task-view.ts'

// The statements of pull-worker leases, which transitions.ts names beside the other
// transitions (claimLease, extendLease, endLease, expired leases). Each is one conditional statement: a lease may
// record something only while it has not ended and the task is still on the lease's attempt,
// so a late or duplicate worker changes nothing (the caller answers 409 lease-lost). Every
// write that ends a lease locks the lease row before the task row, in that order, so that
// two of them racing wait for each other instead of deadlocking.

export type LeasedTask = {
  id: string
  type: string
  payload: unknown
  attempt: number
  maxAttempts: number
  queue: string
  priority: string
  runAt: Date
  expiresAt: Date
  deadline: Date
}

/** Which leases an ending may touch: live ones (a worker's call), expired ones (the sweeper), any (a cancel). */
export type LeaseScope = 'live' | 'expired' | 'any'

export type LeaseEnding = {
  /** The task's new status; `queued` is a retry, due at `runAt`. */
  status: 'completed' | 'failed' | 'queued' | 'cancelled'
  /** The attempt's outcome: completed, failed, cancelled, lost (lease expired) or timed_out. */
  outcome: string
  result?: unknown
  error?: TaskError | null
  runAt?: Date | null
}

export type ExpiredLease = {
  leaseId: string
  tenant: string
  taskId: string
  queue: string
  type: string
  priority: string
  attempt: number
  maxAttempts: number
  backoff: { type: 'exponential' | 'fixed', delayMs: number }
  timedOut: boolean
  onAttempt: boolean
}

const json = (value: unknown): string | null => (value === undefined || value === null ? null : JSON.stringify(value))
const secs = (param: string) => `make_interval(secs => ${param}::double precision / 1000)`

const CLAIM = `
  with claimed as (
    update tasks set status = 'running', attempts = attempts + 1, worker_id = $4, lease_id = $3, started_at = now(), updated_at = now()
    where id = $1 and tenant = $2 and status = 'queued' and cancel_requested_at is null
    returning *
  ), opened as (
    insert into task_attempts (task_id, attempt, worker_id, started_at, outcome)
    select id, attempts, worker_id, started_at, 'running' from claimed
    on conflict (task_id, attempt) do nothing
  ), leased as (
    insert into task_leases (lease_id, task_id, tenant, attempt, worker_id, visibility_ms, expires_at, deadline)
    select $3, id, tenant, attempts, worker_id, $5::int,
           least(now() + ${secs('$5::int')}, now() + ${secs('timeout_ms')}), now() + ${secs('timeout_ms')}
    from claimed
    returning expires_at, deadline
  )
  select c.id, c.type, c.payload, c.attempts as attempt, c.max_attempts as "maxAttempts", c.queue, c.priority,
         c.run_at as "runAt", l.expires_at as "expiresAt", l.deadline
  from claimed c, leased l`

const HEARTBEAT = `
  with lease as (
    update task_leases l set expires_at = least(now() + ${secs('coalesce($3::int, l.visibility_ms)')}, l.deadline)
    from tasks t
    where l.lease_id = $1 and l.tenant = $2 and l.ended_at is null and l.expires_at > now()
      and t.id = l.task_id and t.status = 'running' and t.attempts = l.attempt
    returning l.task_id, l.expires_at
  ), progressed as (
    update tasks t set progress = $4::text::jsonb, updated_at = now()
    from lease where t.id = lease.task_id and $4::text is not null
  )
  select task_id as "taskId", expires_at as "expiresAt" from lease`

// A cancelled task's lease still answers heartbeats (cancelRequested) until it expires.
const CANCELLED_LEASE = `
  select l.task_id as "taskId", l.expires_at as "expiresAt" from task_leases l join tasks t on t.id = l.task_id
  where l.lease_id = $1 and l.tenant = $2 and l.expires_at > now() and t.status = 'cancelled' and t.attempts = l.attempt`

const END = `
  with lease as (
    update task_leases l set ended_at = now()
    from tasks t
    where l.lease_id = $1 and l.tenant = $2 and l.ended_at is null
      and case $3::text when 'live' then l.expires_at > now() when 'expired' then l.expires_at <= now() else true end
      and t.id = l.task_id and t.status = 'running' and t.attempts = l.attempt and t.lease_id = l.lease_id
    returning l.task_id, l.attempt
  ), moved as (
    update tasks t set status = $4::text,
           result = case when $4::text = 'completed' then $6::text::jsonb else t.result end,
           error = coalesce($7::text::jsonb, t.error),
           run_at = coalesce($8::timestamptz, t.run_at),
           worker_id = case when $4::text = 'queued' then null else t.worker_id end,
           finished_at = case when $4::text = 'queued' then t.finished_at else now() end,
           updated_at = now()
    from lease where t.id = lease.task_id
    returning t.*
  ), closed as (
    update task_attempts a set outcome = $5::text, finished_at = now(),
           duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int, error = $7::text::jsonb
    from lease where a.task_id = lease.task_id and a.attempt = lease.attempt
  ), ${owedNotificationsCte('moved')}
  select ${TASK_RETURNING} from moved`

// A webhook attempt's window for callbacks: a lease on the attempt the in-process claim opened
// (same lease id, so ending it is fenced like a pull worker's), expiring at the deadline.
const OPEN_CALLBACK = `
  insert into task_leases (lease_id, task_id, tenant, attempt, worker_id, visibility_ms, expires_at, deadline, callback_token_hash)
  select t.lease_id, t.id, t.tenant, t.attempts, t.worker_id, t.timeout_ms,
         t.started_at + ${secs('t.timeout_ms')}, t.started_at + ${secs('t.timeout_ms')}, $3
  from tasks t
  where t.id = $1 and t.attempts = $2 and t.status = 'running' and t.lease_id is not null
  on conflict (lease_id) do nothing
  returning lease_id as "leaseId", deadline`

/** The lease a callback token names, and whether it may still record anything. */
export type CallbackLease = {
  leaseId: string
  tenant: string
  taskId: string
  type: string
  queue: string
  attempt: number
  maxAttempts: number
  backoff: { type: 'exponential' | 'fixed', delayMs: number }
  /** The lease has not ended, is before its deadline, and the task is still on its attempt. */
  open: boolean
}

export function createLeaseStatements (sql: postgres.Sql) {
  return {
    /** Opens the callback window of a running webhook attempt; undefined when the task has moved on. */
    async openCallback (taskId: string, attempt: number, tokenHash: string | null): Promise<{ leaseId: string, deadline: Date } | undefined> {
      const [row] = await sql.unsafe<{ leaseId: string, deadline: string }[]>(OPEN_CALLBACK, [taskId, attempt, tokenHash])
      return row && { leaseId: row.leaseId, deadline: new Date(row.deadline) }
    },

    /** The lease of a callback token's hash. */
    async callbackLease (tokenHash: string): Promise<CallbackLease | undefined> {
      const [row] = await sql.unsafe<CallbackLease[]>(`
        select l.lease_id as "leaseId", l.tenant, l.task_id as "taskId", t.type, t.queue, l.attempt,
               t.max_attempts as "maxAttempts", t.backoff,
               (l.ended_at is null and l.expires_at > now() and t.status = 'running' and t.attempts = l.attempt
                and t.lease_id = l.lease_id) as open
        from task_leases l join tasks t on t.id = l.task_id
        where l.callback_token_hash = $1`, [tokenHash])
      return row
    },

    /** A queued task of the tenant becomes running on a new attempt held by the lease; undefined when it is not queued. */
    async claim (input: { taskId: string, tenant: string, leaseId: string, workerId: string, visibilityMs: number }): Promise<LeasedTask | undefined> {
      const rows = await sql.unsafe(CLAIM, [input.taskId, input.tenant, input.leaseId, input.workerId, input.visibilityMs])
      const row = rows[0]
      if (!row) return undefined
      return {
        ...(row as unknown as LeasedTask),
        runAt: new Date(row.runAt as string),
        expiresAt: new Date(row.expiresAt as string),
        deadline: new Date(row.deadline as string),
      }
    },

    /**
     * Extends a live lease (never past its deadline) and records progress. `cancelled`: the
     * task was cancelled while leased; undefined: the lease is lost.
     */
    async extend (tenant: string, leaseId: string, extendMs: number | null, progress: unknown):
      Promise<{ taskId: string, expiresAt: Date, cancelled: boolean } | undefined> {
      const [row] = await sql.unsafe<{ taskId: string, expiresAt: string }[]>(HEARTBEAT, [leaseId, tenant, extendMs, json(progress)])
      if (row) return { taskId: row.taskId, expiresAt: new Date(row.expiresAt), cancelled: false }
      const [cancelled] = await sql.unsafe<{ taskId: string, expiresAt: string }[]>(CANCELLED_LEASE, [leaseId, tenant])
      return cancelled && { taskId: cancelled.taskId, expiresAt: new Date(cancelled.expiresAt), cancelled: true }
    },

    /** Ends the lease and its attempt, and moves the task; undefined when the lease was not in `scope`. */
    async end (tenant: string, leaseId: string, scope: LeaseScope, ending: LeaseEnding,
      tx: Pick<postgres.Sql, 'unsafe'> = sql): Promise<TaskRow | undefined> {
      const rows = await tx.unsafe(END, [leaseId, tenant, scope, ending.status, ending.outcome,
        ending.status === 'completed' ? json(ending.result ?? null) ?? 'null' : null, json(ending.error),
        ending.runAt ? ending.runAt.toISOString() : null])
      return rows[0] && toTaskRow(rows[0])
    },

    /** The open lease of a running task, if a pull worker holds it. */
    async openLeaseOf (taskId: string): Promise<{ leaseId: string, tenant: string } | undefined> {
      const [row] = await sql<{ leaseId: string, tenant: string }[]>`
        select l.lease_id as "leaseId", l.tenant from task_leases l join tasks t on t.id = l.task_id
        where l.task_id = ${taskId} and l.ended_at is null and t.attempts = l.attempt`
      return row
    },

    /** Leases past their expiry by at least `graceMs` that have not ended. */
    async listExpired (graceMs: number, limit: number): Promise<ExpiredLease[]> {
      return sql.unsafe<ExpiredLease[]>(`
        select l.lease_id as "leaseId", l.tenant, l.task_id as "taskId", t.queue, t.type, t.priority, l.attempt,
               t.max_attempts as "maxAttempts", t.backoff, l.expires_at >= l.deadline as "timedOut",
               (t.status = 'running' and t.attempts = l.attempt) as "onAttempt"
        from task_leases l join tasks t on t.id = l.task_id
        where l.ended_at is null and l.expires_at <= now() - ${secs('$1')}
        order by l.expires_at limit $2`, [graceMs, limit])
    },

    /** Closes a lease whose task has moved on without it (nothing else to do). */
    async close (leaseId: string): Promise<void> {
      await sql`update task_leases set ended_at = now() where lease_id = ${leaseId} and ended_at is null`
    },
  }
}

export type LeaseStatements = ReturnType<typeof createLeaseStatements>
