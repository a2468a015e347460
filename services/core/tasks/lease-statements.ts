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
  backoff: { type: 'exponential' | 'fixed', delayMs: number }
  runAt: Date
  expiresAt: Date
  /** How long the lease lasts, from the claim (Postgres' clock, as a duration). */
  expiresInMs: number
  deadline: Date
  /** How many tasks it depends on (their results go with the lease). */
  dependencyCount: number
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

// The claim of the tasks whose jobs one lease request took: each queued one becomes running on
// a new attempt held by its own lease. The tenant, worker and visibility are the request's.
// Rows are updated in task id order (the caller sorts them), the order in which creating
// dependents locks tasks. Several rows are planned on each run, one is prepared, as in
// the batched statements of in-process workers (transition-batch-statements.ts).
const claimSql = (input: string) => `
  with input as (
    ${input}
  ), claimed as (
    update tasks t set status = 'running', attempts = t.attempts + 1, worker_id = $4, lease_id = i.lease_id, started_at = now(), updated_at = now()
    from input i
    where t.id = i.task_id and t.tenant = $2 and t.status = 'queued' and t.cancel_requested_at is null
    returning t.*
  ), opened as (
    insert into task_attempts (task_id, attempt, worker_id, started_at, outcome)
    select id, attempts, worker_id, started_at, 'running' from claimed
    on conflict (task_id, attempt) do nothing
  ), leased as (
    insert into task_leases (lease_id, task_id, tenant, attempt, worker_id, visibility_ms, expires_at, deadline)
    select lease_id, id, tenant, attempts, worker_id, $5::int,
           least(now() + ${secs('$5::int')}, now() + ${secs('timeout_ms')}), now() + ${secs('timeout_ms')}
    from claimed
    returning task_id, expires_at, deadline
  )
  select c.id, c.type, c.payload, c.attempts as attempt, c.max_attempts as "maxAttempts", c.backoff, c.queue, c.priority,
         c.run_at as "runAt", l.expires_at as "expiresAt", (extract(epoch from l.expires_at - now()) * 1000)::int as "expiresInMs",
         l.deadline, c.dependency_count as "dependencyCount"
  from claimed c join leased l on l.task_id = c.id`
const CLAIM_ONE = claimSql('select $1::uuid as task_id, $3::uuid as lease_id')
const CLAIM_MANY = claimSql('select * from unnest($1::uuid[], $3::uuid[]) as i(task_id, lease_id)')

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

// The end of leases, one or several (each input row keeps its own conditions). The lease row is
// locked, then its task's row, and the task's state is checked on the row as locked: a write
// that committed meanwhile (another ending, a cancel, a dependent being created) is seen, and
// nothing is written unless both still match. Several rows are locked in task id order, the
// order in which creating dependents locks tasks, so two such statements wait instead of
// deadlocking.
//
// `withoutDependents` leaves alone a task others depend on whose end is final: it must end in
// a transaction that also settles its dependents (transitions.ts falls back to one). Creating
// a dependent sets has_dependents under the task's row lock, so a task found without
// dependents here gets none until this statement has committed. A retry (queued) changes
// nothing for dependents and needs no such transaction.
//
// Like the batched finish (transition-batch-statements.ts), several rows come in as arrays
// expanded with unnest and that statement is planned on each run; a single row is prepared.
const endSql = (input: string, withoutDependents: boolean) => `
  with input as (
    ${input}
  ), lease as materialized (
    select l.lease_id, l.task_id, l.attempt, i.status, i.outcome, i.result, i.error, i.run_at
    from input i join task_leases l on l.lease_id = i.lease_id and l.tenant = i.tenant
    where l.ended_at is null
      and case i.scope when 'live' then l.expires_at > now() when 'expired' then l.expires_at <= now() else true end
    order by l.task_id
    for no key update of l
  ), ending as materialized (
    select e.* from lease e join tasks t on t.id = e.task_id
    where t.status = 'running' and t.attempts = e.attempt and t.lease_id = e.lease_id
      ${withoutDependents ? "and (not t.has_dependents or e.status = 'queued')" : ''}
    order by t.id
    for no key update of t
  ), ended as (
    update task_leases l set ended_at = now() from ending e where l.lease_id = e.lease_id
  ), moved as (
    update tasks t set status = e.status,
           result = case when e.status = 'completed' then e.result::jsonb else t.result end,
           error = coalesce(e.error::jsonb, t.error),
           run_at = coalesce(e.run_at::timestamptz, t.run_at),
           worker_id = case when e.status = 'queued' then null else t.worker_id end,
           finished_at = case when e.status = 'queued' then t.finished_at else now() end,
           updated_at = now()
    from ending e where t.id = e.task_id
    returning t.*
  ), closed as (
    update task_attempts a set outcome = e.outcome, finished_at = now(),
           duration_ms = (extract(epoch from now() - a.started_at) * 1000)::int, error = e.error::jsonb
    from ending e where a.task_id = e.task_id and a.attempt = e.attempt
  ), ${owedNotificationsCte('moved')}
  select ${TASK_RETURNING} from moved`

const ONE_END_INPUT = `select $1::uuid as lease_id, $2::text as tenant, $3::text as scope, $4::text as status, $5::text as outcome,
      $6::text as result, $7::text as error, $8::text as run_at`
/** One lease's end, whatever depends on its task (in the caller's transaction). */
const END_ONE = endSql(ONE_END_INPUT, false)
const END_ONE_WITHOUT_DEPENDENTS = endSql(ONE_END_INPUT, true)
const END_MANY_WITHOUT_DEPENDENTS = endSql(`select * from unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
      as i(lease_id, tenant, scope, status, outcome, result, error, run_at)`, true)

/** A lease to end: whose, which leases the ending may touch, and how the task moves. */
export type LeaseEnd = { tenant: string, leaseId: string, scope: LeaseScope, ending: LeaseEnding }

const endColumns = (e: LeaseEnd): unknown[] => [e.leaseId, e.tenant, e.scope, e.ending.status, e.ending.outcome,
  e.ending.status === 'completed' ? json(e.ending.result ?? null) ?? 'null' : null, json(e.ending.error),
  e.ending.runAt ? e.ending.runAt.toISOString() : null]
/** One row's parameters as they are; several rows' as one array per column. */
function columns (ends: LeaseEnd[]): unknown[] {
  const rows = ends.map(endColumns)
  return rows.length === 1 ? rows[0]! : rows[0]!.map((_, c) => rows.map((row) => row[c]))
}

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

    /**
     * The queued tasks among `jobs` (ids of the tenant's tasks, each with the lease that took
     * its job) become running on a new attempt held by that lease: per job, in order, the
     * leased task or undefined (it is not queued, or not the tenant's).
     */
    async claim (tenant: string, workerId: string, visibilityMs: number, jobs: readonly { taskId: string, leaseId: string }[]):
      Promise<(LeasedTask | undefined)[]> {
      if (jobs.length === 0) return []
      const one = jobs.length === 1
      // In id order (uuids sort as their lowercase text does).
      const sorted = jobs.map((j) => ({ taskId: j.taskId.toLowerCase(), leaseId: j.leaseId })).toSorted((a, b) => (a.taskId < b.taskId ? -1 : 1))
      const rows = await sql.unsafe(one ? CLAIM_ONE : CLAIM_MANY, [
        one ? sorted[0]!.taskId : sorted.map((j) => j.taskId), tenant,
        one ? sorted[0]!.leaseId : sorted.map((j) => j.leaseId), workerId, visibilityMs,
      ] as never[], { prepare: one })
      const byId = new Map(rows.map((row) => [row.id as string, {
        ...(row as unknown as LeasedTask),
        runAt: new Date(row.runAt as string),
        expiresAt: new Date(row.expiresAt as string),
        deadline: new Date(row.deadline as string),
      }]))
      return jobs.map((j) => byId.get(j.taskId.toLowerCase()))
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
    async end (input: LeaseEnd, tx: Pick<postgres.Sql, 'unsafe'> = sql): Promise<TaskRow | undefined> {
      const rows = await tx.unsafe(END_ONE, endColumns(input) as never[])
      return rows[0] && toTaskRow(rows[0])
    },

    /**
     * Ends leases as `end` does, one statement for all, except where the task's end is final and
     * others depend on it: per input, in input order, the task as moved or undefined (it moved on
     * without the lease, the lease was not in `scope`, or the task has dependents).
     */
    async endWithoutDependents (inputs: LeaseEnd[]): Promise<(TaskRow | undefined)[]> {
      const one = inputs.length === 1
      const rows = await sql.unsafe(one ? END_ONE_WITHOUT_DEPENDENTS : END_MANY_WITHOUT_DEPENDENTS, columns(inputs) as never[], { prepare: one })
      // The task keeps the lease id it ended with (as Postgres spells it: lowercase).
      const byLease = new Map(rows.map((raw) => { const row = toTaskRow(raw); return [row.leaseId, row] }))
      return inputs.map((i) => byLease.get(i.leaseId.toLowerCase()))
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
