import { randomUUID } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import type postgres from 'postgres'
import { Counter, type Registry } from 'prom-client'
import { LeaseLostError, ValidationError } from '../errors.ts'
import { isUuid } from '../ids.ts'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import { retryOnOutage } from '../retry-on-outage.ts'
import type { TaskTypeCatalog } from '../task-types/task-type-catalog.ts'
import { createDependencyRepository, type DependencyResults } from '../dependencies/dependency-repository.ts'
import type { LeaseEnding, LeasedTask } from '../tasks/lease-statements.ts'
import type { TaskTransitions } from '../tasks/transitions.ts'
import type { TaskEventPublisher } from '../tasks/task-events.ts'
import { statusEventOf } from '../tasks/task-status-event.ts'
import { toTaskView, type TaskError, type TaskView } from '../tasks/task-view.ts'
import { LOCK_SLACK_MS, type KnownJob, type PullDispatcher } from './pull-dispatcher.ts'
import { reportedError, resultEnding, retryOrFail } from './lease-endings.ts'

export type LeaseRequest = { types: string[], max: number, visibilityMs: number, waitMs: number, workerId?: string | undefined }
export type Lease = {
  leaseId: string
  expiresAt: string
  task: { id: string, type: string, payload: unknown, attempt: number, maxAttempts: number, deadline: string, dependencies?: DependencyResults }
}
export type FailInput = { error: { message: string, code?: string | undefined }, retryable?: boolean | undefined, retryAfterMs?: number | undefined }

export const LEASE_OUTCOMES = ['completed', 'failed', 'expired', 'cancelled'] as const
// How often a long poll looks again when nothing was ready, and how long past its expiry a
// lease is left before the sweeper ends it (the job's lock outlives it by a round trip).
const POLL_MS = 100
const SWEEP_GRACE_MS = LOCK_SLACK_MS
const SWEEP_BATCH = 200
const REMOVE_TRIES = 20
// Tasks of other types of a shared queue that one lease round may pass over.
const MAX_FOREIGN = 50
// Leases handed out by this process whose end has not been recorded here, at most this many
// (the oldest are forgotten first; a forgotten one is read again when it ends).
const MAX_HELD = 20_000

const lost = (detail = 'The lease expired, ended, or is not known') => new LeaseLostError(detail)

/**
 * Pull workers over HTTP: leases taken from BullMQ (the only dispatcher) and recorded in
 * Postgres (the truth), heartbeats, completes and fails fenced by the lease id, and the
 * sweeper that ends expired leases and puts their tasks back by the retry policy.
 */
export function createLeaseService (deps: {
  sql: postgres.Sql
  transitions: Pick<TaskTransitions, 'claimLeases' | 'extendLease' | 'endLease' | 'expiredLeases' | 'closeLease' | 'openLeaseOf'>
  catalog: Pick<TaskTypeCatalog, 'registered' | 'validateResult'>
  dispatcher: PullDispatcher
  queues: Pick<QueueRegistry, 'enqueue'>
  events: Pick<TaskEventPublisher, 'publish'>
  registry: Registry
  log: Logger
  maxResultBytes?: number
}) {
  const transitions = {
    claim: deps.transitions.claimLeases,
    extend: deps.transitions.extendLease,
    end: deps.transitions.endLease,
    listExpired: deps.transitions.expiredLeases,
    close: deps.transitions.closeLease,
    openLeaseOf: deps.transitions.openLeaseOf,
  }
  const dependencies = createDependencyRepository(deps.sql)
  const leasesTotal = new Counter({
    name: 'tasklane_leases_total',
    help: 'Pull-worker leases ended, by outcome',
    labelNames: ['outcome'] as const,
    registers: [deps.registry],
  })
  for (const outcome of LEASE_OUTCOMES) leasesTotal.inc({ outcome }, 0)

  // What a lease request learned of each lease it handed out: a complete or fail sent to this
  // process then needs neither its task read from Postgres nor its job from Redis. None of it
  // changes while the lease lasts (a task's attempt budget moves only once it has ended), and
  // the ending statement still fences the lease; a lease ended elsewhere (another replica) is
  // read as before.
  type Held = { tenant: string, type: string, attempt: number, maxAttempts: number, backoff: LeasedTask['backoff'], job: KnownJob }
  const held = new Map<string, Held>()
  function hold (leaseId: string, lease: Held): void {
    held.set(leaseId.toLowerCase(), lease)
    if (held.size > MAX_HELD) held.delete(held.keys().next().value!)
  }

  /** The queues of the named types, each with its names and the longest default timeout among them. */
  function pullQueues (tenant: string, types: string[]): Map<string, { names: Set<string>, timeoutMs: number }> {
    const byQueue = new Map<string, { names: Set<string>, timeoutMs: number }>()
    const errors = types.flatMap((name, i) => {
      const type = deps.catalog.registered(tenant, name)
      if (!type || type.executor.kind !== 'pull') return [{ path: `/types/${i}`, message: `"${name}" is not one of this tenant's pull task types` }]
      const queue = byQueue.get(type.internalQueue) ?? { names: new Set<string>(), timeoutMs: 0 }
      queue.names.add(name)
      queue.timeoutMs = Math.max(queue.timeoutMs, type.defaults.timeoutMs)
      byQueue.set(type.internalQueue, queue)
      return []
    })
    if (errors.length > 0) throw new ValidationError(errors, 'Leases are only for task types with a pull executor')
    return byQueue
  }

  /** A job whose task could not be claimed: ended in Redis when the task is over, else handed back. */
  async function settleUnclaimed (queue: string, taskId: string, token: string): Promise<void> {
    const [row] = await deps.sql<{ status: string, cancel: boolean }[]>`
      select status, cancel_requested_at is not null as cancel from tasks where id = ${taskId}`
    if (row?.status === 'queued' && row.cancel) {
      await deps.sql`update tasks set status = 'cancelled', finished_at = now(), updated_at = now()
        where id = ${taskId} and status = 'queued' and cancel_requested_at is not null`
    }
    if (!row || row.status !== 'running') await deps.dispatcher.finish(queue, taskId, token)
    // Running on an older lease that has not been swept yet: try again after it is.
    else await deps.dispatcher.delay(queue, taskId, token, Date.now() + 1_000)
  }

  /** Jobs taken, each locked with the lease id that will hold its task, not claimed yet. */
  /** `lockEnd`: when the job's lock ends at the latest, taken for the lease's expected length (`lockBaseMs`) and the slack. */
  type Taken = { taskId: string, leaseId: string, job: NonNullable<Awaited<ReturnType<PullDispatcher['take']>>>, lockEnd: number, lockBaseMs: number }

  /** Gives jobs back at once: they were taken but will not be leased. */
  async function handBack (queue: string, jobs: readonly { id: string, token: string }[]): Promise<void> {
    await Promise.all(jobs.map((j) => deps.dispatcher.delay(queue, j.id, j.token, Date.now()).catch(() => {})))
  }

  /**
   * Up to `room` ready jobs of the queue's named types, in BullMQ's order. Jobs of other types
   * of a shared queue, which this worker did not ask for, go to `foreign`: held until the end of
   * the round (so they are not taken again), then handed back. One job is asked for first, so an
   * empty queue costs one call; once that came, the rest are asked for at once (Redis runs the
   * calls one after another, each atomic, as for concurrent workers).
   */
  async function takeJobs (queue: string, names: Set<string>, room: number, lockBaseMs: number,
    foreign: { id: string, token: string }[]): Promise<Taken[]> {
    const taken: Taken[] = []
    let wave = 1
    while (taken.length < room && foreign.length < MAX_FOREIGN) {
      const leaseIds = Array.from({ length: Math.min(wave, room - taken.length, MAX_FOREIGN - foreign.length) }, () => randomUUID())
      const lockMs = lockBaseMs + LOCK_SLACK_MS
      const lockEnd = Date.now() + lockMs
      const jobs = await Promise.allSettled(leaseIds.map((leaseId) => deps.dispatcher.take(queue, leaseId, lockMs)))
      let empty = false
      jobs.forEach((job, i) => {
        if (job.status === 'rejected') return
        if (!job.value) empty = true
        else if (names.has(job.value.name)) taken.push({ taskId: job.value.id!, leaseId: leaseIds[i]!, job: job.value, lockEnd, lockBaseMs })
        else foreign.push({ id: job.value.id!, token: leaseIds[i]! })
      })
      const failed = jobs.find((job) => job.status === 'rejected')
      if (failed) {
        await handBack(queue, taken.map((t) => ({ id: t.taskId, token: t.leaseId })))
        throw failed.reason
      }
      if (empty) break
      wave = room
    }
    return taken
  }

  /**
   * The tasks of the jobs taken become running, in one statement; a job whose task could not be
   * claimed is settled. The ids of leased tasks that depend on others are added to `dependent`.
   */
  async function claimJobs (tenant: string, queue: string, taken: Taken[], request: LeaseRequest, workerId: string,
    dependent: Set<string>): Promise<Lease[]> {
    let tasks: (LeasedTask | undefined)[]
    try {
      tasks = await transitions.claim(tenant, workerId, request.visibilityMs, taken)
    } catch (err) {
      await handBack(queue, taken.map((t) => ({ id: t.taskId, token: t.leaseId })))
      throw err
    }
    const leases = await Promise.all(taken.map(async ({ taskId, leaseId, job, lockEnd, lockBaseMs }, i): Promise<Lease | undefined> => {
      const task = tasks[i]
      if (!task) {
        await settleUnclaimed(queue, taskId, leaseId)
        return undefined
      }
      // The lock was taken for the lease's expected length and the slack, so it outlives the
      // lease by less than the slack. Set again when it would not: the lease is shorter (the
      // task's own timeout), or longer, or the claim came so late that the lock would end first.
      if (task.expiresInMs !== lockBaseMs || lockEnd < Date.now() + task.expiresInMs) {
        await deps.dispatcher.extendTaken(job, leaseId, task.expiresInMs)
      }
      hold(leaseId, { tenant, type: task.type, attempt: task.attempt, maxAttempts: task.maxAttempts, backoff: task.backoff, job: { name: job.name, opts: job.opts } })
      if (task.dependencyCount > 0) dependent.add(taskId)
      void deps.events.publish(taskId, { kind: 'status', status: 'running', attempts: task.attempt, updatedAt: new Date().toISOString() })
      return {
        leaseId,
        expiresAt: task.expiresAt.toISOString(),
        task: { id: task.id, type: task.type, payload: task.payload, attempt: task.attempt, maxAttempts: task.maxAttempts, deadline: task.deadline.toISOString() },
      }
    }))
    return leases.filter((lease): lease is Lease => lease !== undefined)
  }

  /** Each leased task that depends on others (`dependent`) gets their results, as in-process handlers do. */
  async function withDependencies (items: Lease[], dependent: Set<string>): Promise<Lease[]> {
    if (dependent.size === 0) return items
    const results = await dependencies.results([...dependent])
    for (const item of items) {
      const found = results.get(item.task.id)
      if (found) item.task.dependencies = found
    }
    return items
  }

  async function end (tenant: string, leaseId: string, ending: LeaseEnding, outcome: typeof LEASE_OUTCOMES[number] | null,
    scope: 'live' | 'expired' | 'any' = 'live'): Promise<TaskView | undefined> {
    const known = held.get(leaseId.toLowerCase())?.job
    const row = await transitions.end(tenant, leaseId, scope, ending)
    // Whatever the answer, the lease is over (or was not live): nothing more to keep of it.
    held.delete(leaseId.toLowerCase())
    if (!row) return undefined
    if (outcome) leasesTotal.inc({ outcome })
    void deps.events.publish(row.id, statusEventOf(row))
    // Redis follows Postgres: the job is done, or waits out the retry's backoff.
    await retryOnOutage(() => ending.status === 'queued'
      ? deps.dispatcher.delay(row.queue, row.id, leaseId, row.runAt.getTime(), known)
      : deps.dispatcher.finish(row.queue, row.id, leaseId, known)).catch((err: unknown) =>
      deps.log.warn({ err, taskId: row.id }, 'the job of an ended lease could not be moved; its lock expires'))
    return toTaskView(row)
  }

  /** The task of a lease: kept from the lease request when this process handed it out, else read. */
  async function taskOfLease (tenant: string, leaseId: string) {
    const kept = held.get(leaseId.toLowerCase())
    if (kept?.tenant === tenant) return kept
    const [row] = await deps.sql<{ type: string, attempt: number, maxAttempts: number, backoff: { type: 'exponential' | 'fixed', delayMs: number } }[]>`
      select t.type, l.attempt, t.max_attempts as "maxAttempts", t.backoff from task_leases l join tasks t on t.id = l.task_id
      where l.lease_id = ${leaseId} and l.tenant = ${tenant}`
    return row
  }

  /** Ends expired leases: the attempt is lost (or timed out past its deadline) and the task retried or failed. */
  async function sweep (): Promise<number> {
    let ended = 0
    for (const lease of await transitions.listExpired(SWEEP_GRACE_MS, SWEEP_BATCH)) {
      held.delete(lease.leaseId.toLowerCase())
      if (!lease.onAttempt) { await transitions.close(lease.leaseId); continue }
      const error: TaskError = lease.timedOut
        ? { message: 'the attempt did not finish before its deadline', code: 'TIMEOUT' }
        : { message: 'the lease expired without a heartbeat', code: 'LEASE_EXPIRED' }
      const ending = retryOrFail(lease.attempt, lease.maxAttempts, lease.backoff, error, true, lease.timedOut ? 'timed_out' : 'lost')
      const row = await transitions.end(lease.tenant, lease.leaseId, 'expired', ending)
      if (!row) continue
      leasesTotal.inc({ outcome: 'expired' })
      ended++
      void deps.events.publish(row.id, statusEventOf(row))
      // The lock was set to expire with the lease; once it has, the job can be removed and
      // added again, due when the backoff is over.
      let removed = false
      for (let i = 0; i < REMOVE_TRIES && !removed; i++) {
        removed = await deps.dispatcher.removeExpired(row.queue, row.id)
        if (!removed) await sleep(100)
      }
      if (!removed) deps.log.warn({ taskId: row.id }, 'the job of an expired lease is still locked; the reconciler will repair it')
      else if (row.status === 'queued') await deps.queues.enqueue([row])
      deps.log.info({ taskId: row.id, leaseId: lease.leaseId, outcome: ending.outcome, status: row.status }, 'lease expired')
    }
    return ended
  }

  let timer: NodeJS.Timeout | undefined
  let sweeping: Promise<unknown> = Promise.resolve()

  return {
    /**
     * Up to `max` ready tasks of the named pull types, in BullMQ's order (priority, then due
     * time); waits up to `waitMs` for the first one. Each leased task is running on a new attempt.
     */
    async lease (tenant: string, request: LeaseRequest): Promise<Lease[]> {
      const byQueue = pullQueues(tenant, request.types)
      const workerId = request.workerId ?? 'pull-worker'
      const deadline = Date.now() + request.waitMs
      const items: Lease[] = []
      const dependent = new Set<string>()
      for (;;) {
        for (const [queue, { names, timeoutMs }] of byQueue) {
          const foreign: { id: string, token: string }[] = []
          try {
            // The jobs are taken first, then their tasks claimed in one statement; again while
            // some could not be claimed and more may be ready.
            while (items.length < request.max && foreign.length < MAX_FOREIGN) {
              // A lease lasts its visibility, or less when the attempt's timeout is shorter.
              const taken = await takeJobs(queue, names, request.max - items.length, Math.min(request.visibilityMs, timeoutMs), foreign)
              if (taken.length === 0) break
              const leased = await claimJobs(tenant, queue, taken, request, workerId, dependent)
              items.push(...leased)
              if (leased.length === taken.length) break
            }
          } finally {
            await Promise.all(foreign.map((f) => deps.dispatcher.delay(queue, f.id, f.token, Date.now())))
          }
        }
        if (items.length > 0) return withDependencies(items, dependent)
        if (Date.now() + POLL_MS > deadline) return items
        await sleep(POLL_MS)
      }
    },

    async heartbeat (tenant: string, leaseId: string, input: { extendMs?: number | undefined, progress?: unknown }) {
      if (!isUuid(leaseId)) throw lost()
      const extended = await transitions.extend(tenant, leaseId, input.extendMs ?? null, input.progress)
      if (!extended) throw lost()
      if (!extended.cancelled) {
        const [row] = await deps.sql<{ queue: string }[]>`select queue from tasks where id = ${extended.taskId}`
        if (row) await deps.dispatcher.extend(row.queue, extended.taskId, leaseId, extended.expiresAt.getTime() - Date.now())
        if (input.progress !== undefined) void deps.events.publish(extended.taskId, { kind: 'progress', progress: input.progress, updatedAt: new Date().toISOString() })
      }
      return { expiresAt: extended.expiresAt.toISOString(), cancelRequested: extended.cancelled }
    },

    /** Records the result; one that does not match the type's result schema fails the task (RESULT_INVALID, not retried). */
    async complete (tenant: string, leaseId: string, result: unknown): Promise<TaskView> {
      if (!isUuid(leaseId)) throw lost()
      const task = await taskOfLease(tenant, leaseId)
      if (!task) throw lost()
      const ending = resultEnding(deps.catalog, tenant, task.type, result, deps.maxResultBytes)
      const view = await end(tenant, leaseId, ending, ending.status === 'completed' ? 'completed' : 'failed')
      if (!view) throw lost()
      return view
    },

    /** Records a failure: retried with the task's backoff (or `retryAfterMs` when longer) while attempts are left. */
    async fail (tenant: string, leaseId: string, input: FailInput): Promise<TaskView> {
      if (!isUuid(leaseId)) throw lost()
      const task = await taskOfLease(tenant, leaseId)
      if (!task) throw lost()
      const ending = retryOrFail(task.attempt, task.maxAttempts, task.backoff, reportedError(input.error), input.retryable ?? true, 'failed', input.retryAfterMs)
      const view = await end(tenant, leaseId, ending, 'failed')
      if (!view) throw lost()
      return view
    },

    /** A client cancelled a task: when a pull worker holds it, it ends cancelled at once. */
    async cancelLeased (taskId: string): Promise<TaskView | undefined> {
      const lease = await transitions.openLeaseOf(taskId)
      if (!lease) return undefined
      return end(lease.tenant, lease.leaseId, { status: 'cancelled', outcome: 'cancelled' }, 'cancelled', 'any')
    },

    sweep,
    /** Sweeps every `intervalMs`; conditional updates keep two replicas' sweeps from ending a lease twice. */
    start (intervalMs: number): void {
      const tick = () => {
        sweeping = sweep()
          .catch((err: unknown) => deps.log.warn({ err }, 'lease sweep failed; trying again'))
          .finally(() => { if (timer) timer = setTimeout(tick, intervalMs) })
      }
      timer = setTimeout(tick, intervalMs)
    },
    async stop (): Promise<void> {
      clearTimeout(timer)
      timer = undefined
      await sweeping
    },
  }
}

export type LeaseService = ReturnType<typeof createLeaseService>
