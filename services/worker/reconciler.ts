import { Counter, type Registry } from 'prom-client'
import type postgres from 'postgres'
import type { Config } from '../core/config.ts'
import type { Logger } from '../core/log.ts'
import { createJobProbe, type JobPresence } from '../core/queues/job-probe.ts'
import type { QueueRegistry } from '../core/queues/queue-registry.ts'
import { createTaskRecoveryRepository, FIRST_ID } from '../core/tasks/task-recovery-repository.ts'
import type { TaskTransitions, UnfinishedTask } from '../core/tasks/transitions.ts'
import { createPassLoop } from '../core/pass-loop.ts'

export const REPAIR_REASONS = ['queued_job_missing', 'queued_job_finished', 'running_worker_lost', 'failed_worker_lost'] as const
export type RepairReason = typeof REPAIR_REASONS[number]
export type PassReport = { active: boolean, checked: number, repaired: Record<RepairReason, number> }

// Any constant works: it only has to be the same in every replica. Advisory locks are per
// database, so one reconciler runs per Tasklane database.
export const RECONCILER_LOCK_KEY = 7_325_811_906_113n

type ReconcilerConfig = Pick<Config, 'TASKLANE_RECONCILER_INTERVAL_MS' | 'TASKLANE_RECONCILER_MIN_AGE_MS' |
  'TASKLANE_RECONCILER_STALE_RUNNING_MS' | 'TASKLANE_RECONCILER_BATCH_SIZE' | 'TASKLANE_RECONCILER_MAX_PER_PASS'>

/**
 * Postgres is the truth, Redis only dispatches: the reconciler enqueues again, under the same
 * job id, every queued task whose job Redis lost (an enqueue that failed, a Redis restarted
 * without persistence or flushed, an evicted key), and puts back to queued every running task
 * whose worker is gone (its job vanished or ended without the task ending). Every replica runs
 * one; an advisory lock lets one of them do a pass at a time.
 */
export function createReconciler (deps: {
  sql: postgres.Sql
  transitions: Pick<TaskTransitions, 'requeueLost'>
  /** A client of exactly one connection, the reconciler's own: it holds the advisory lock. */
  lockSql: postgres.Sql
  redis: Parameters<typeof createJobProbe>[0]['redis']
  queues: Pick<QueueRegistry, 'get' | 'has' | 'enqueue'>
  config: ReconcilerConfig
  registry: Registry
  log: Logger
}) {
  const { config, log } = deps
  const repo = createTaskRecoveryRepository(deps.sql)
  const probe = createJobProbe(deps)
  const repairedTotal = new Counter({
    name: 'tasklane_reconciler_repaired_total',
    help: 'Tasks the reconciler enqueued again or took back from a lost worker, by reason',
    labelNames: ['reason'] as const,
    registers: [deps.registry],
  })
  for (const reason of REPAIR_REASONS) repairedTotal.inc({ reason }, 0)

  // Where each scan resumes, so a huge backlog is covered over several passes.
  const cursors = { queued: FIRST_ID, running: FIRST_ID }

  /** Removes a finished job so the same id can be added again; a locked job stays. */
  async function dropFinished (task: UnfinishedTask): Promise<void> {
    await deps.queues.get(task.queue).remove(task.id)
  }

  /**
   * Of queued tasks whose job hash is there, unfinished, unlocked and in neither the
   * prioritized nor the delayed set (the probe's ZSCOREs settle the usual case), the ones
   * whose job is in none of BullMQ's lists: keys lost one by one (an eviction, a partial
   * delete racing an add) can leave a hash that no worker will ever take, and adding the same
   * id again is a no-op while it exists. BullMQ's own state script checks every list at once.
   */
  async function orphans (tasks: UnfinishedTask[]): Promise<Set<UnfinishedTask>> {
    const states = await Promise.all(tasks.map((task) => deps.queues.get(task.queue).getJobState(task.id)))
    return new Set(tasks.filter((_, i) => states[i] === 'unknown'))
  }

  async function repairQueued (tasks: UnfinishedTask[], presence: JobPresence[], report: PassReport): Promise<void> {
    const toEnqueue: UnfinishedTask[] = []
    const lost = await orphans(tasks.filter((_, i) => presence[i] === 'pending'))
    for (const [i, task] of tasks.entries()) {
      if (presence[i] === 'missing') {
        toEnqueue.push(task)
        report.repaired.queued_job_missing++
      } else if (presence[i] === 'finished') {
        await dropFinished(task)
        toEnqueue.push(task)
        report.repaired.queued_job_finished++
      } else if (lost.has(task)) {
        await dropFinished(task)
        toEnqueue.push(task)
        report.repaired.queued_job_missing++
      }
    }
    await deps.queues.enqueue(toEnqueue)
  }

  async function repairRunning (tasks: UnfinishedTask[], presence: JobPresence[], report: PassReport): Promise<void> {
    const toEnqueue: UnfinishedTask[] = []
    for (const [i, task] of tasks.entries()) {
      // A locked job has a live worker; a pending one is BullMQ's stalled check's to hand over.
      if (presence[i] !== 'missing' && presence[i] !== 'finished') continue
      const repaired = await deps.transitions.requeueLost(task.id, task.attempts, config.TASKLANE_RECONCILER_STALE_RUNNING_MS)
      if (!repaired) continue
      if (presence[i] === 'finished') await dropFinished(task)
      if (repaired.outcome === 'worker_lost') {
        // The task lost its worker too often and ended failed: nothing to enqueue.
        report.repaired.failed_worker_lost++
        continue
      }
      toEnqueue.push(repaired.task)
      report.repaired.running_worker_lost++
    }
    await deps.queues.enqueue(toEnqueue)
  }

  async function scan (status: 'queued' | 'running', report: PassReport): Promise<void> {
    const olderThanMs = status === 'queued' ? config.TASKLANE_RECONCILER_MIN_AGE_MS : config.TASKLANE_RECONCILER_STALE_RUNNING_MS
    let after = cursors[status]
    let budget = config.TASKLANE_RECONCILER_MAX_PER_PASS
    while (budget > 0) {
      const limit = Math.min(config.TASKLANE_RECONCILER_BATCH_SIZE, budget)
      const rows = await repo.listUntouched(status, olderThanMs, after, limit)
      // Tasks of a queue this deployment no longer knows cannot be dispatched; leave them be.
      const tasks = rows.filter((task) => deps.queues.has(task.queue))
      const presence = await probe(tasks)
      if (status === 'queued') await repairQueued(tasks, presence, report)
      else await repairRunning(tasks, presence, report)
      report.checked += rows.length
      budget -= rows.length
      if (rows.length < limit) { after = FIRST_ID; break }
      after = rows.at(-1)!.id
    }
    cursors[status] = after
  }

  const emptyReport = (): PassReport => ({ active: false, checked: 0, repaired: { queued_job_missing: 0, queued_job_finished: 0, running_worker_lost: 0, failed_worker_lost: 0 } })

  // One pass at a time across replicas: see pass-loop.ts for the lock. The repairs are
  // conditional, so a pass overlapping another (a backend killed mid-pass) changes nothing twice.
  const loop = createPassLoop<PassReport>({
    name: 'reconciler',
    what: 'Reconciler passes',
    intervalMs: config.TASKLANE_RECONCILER_INTERVAL_MS,
    lock: { sql: deps.lockSql, key: RECONCILER_LOCK_KEY },
    registry: deps.registry,
    log,
    async pass () {
      const report = { ...emptyReport(), active: true }
      await scan('queued', report)
      await scan('running', report)
      return report
    },
    passed (report) {
      for (const reason of REPAIR_REASONS) {
        if (report.repaired[reason] > 0) repairedTotal.inc({ reason }, report.repaired[reason])
      }
      const total = REPAIR_REASONS.reduce((sum, reason) => sum + report.repaired[reason], 0)
      if (total > 0) log.warn({ repaired: report.repaired, checked: report.checked }, 'reconciler repaired tasks')
      else log.debug({ checked: report.checked }, 'reconciler pass found nothing to repair')
    },
  })

  return {
    /** One pass, if no other replica is in one (`active: false` when another was). */
    async runOnce (): Promise<PassReport> {
      return (await loop.runOnce()) ?? emptyReport()
    },
    /** Starts passes every interval (an interval of 0 leaves the reconciler off). */
    start: () => loop.start(),
    /** No new pass starts; resolves once the current one is over. */
    stop: loop.stop,
  }
}

export type Reconciler = ReturnType<typeof createReconciler>
