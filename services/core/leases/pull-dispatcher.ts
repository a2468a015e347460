import { Job, Worker, type JobsOptions } from 'bullmq'
import type { Redis } from 'ioredis'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'

/**
 * How long a taken job's lock outlives its lease at most: the sweeper waits as long past a
 * lease's expiry before it ends the lease and removes the job, so the lock is gone by then.
 * Taking a job with its lease's visibility plus this slack covers the time between the take
 * and the claim, so the lock needs no second call to match the lease.
 */
export const LOCK_SLACK_MS = 250
// A lease of the defaults (a visibility of 60 s, a task timeout of 30 s) lasts 30 s: it takes
// its job with no call besides the take.
const WORKER_LOCK_MS = 30_000 + LOCK_SLACK_MS

/** What moving a job needs of it besides its id, kept from its take so the job is not read again. */
export type KnownJob = { name: string, opts: JobsOptions }

/**
 * BullMQ's manual job processing for pull queues: one processor-less Worker per queue, made
 * when a lease first names the queue. A job's lock token is its lease id, so every move of a
 * leased job proves it holds the lock. BullMQ stays the only dispatcher: its priorities, and
 * the queue's global concurrency and rate limit, decide what is handed out.
 *
 * No stalled check runs on these queues: the lease sweeper, from Postgres, ends expired
 * leases and puts their jobs back with the task's backoff (BullMQ's stalled check would put
 * them back at once, without it).
 */
export function createPullDispatcher (deps: {
  connection: Redis
  prefix: string
  queues: Pick<QueueRegistry, 'add'>
  log: Logger
}) {
  const workers = new Map<string, Worker>()

  function worker (queue: string): Worker {
    let w = workers.get(queue)
    if (!w) {
      w = new Worker(queue, null, { connection: deps.connection, prefix: deps.prefix, autorun: false, lockDuration: WORKER_LOCK_MS })
      w.on('error', (err) => deps.log.warn({ err, queue }, 'pull worker error'))
      workers.set(queue, w)
    }
    return w
  }

  async function job (queue: string, id: string): Promise<Job | undefined> {
    return (await Job.fromId(deps.queues.add(queue), id)) ?? undefined
  }

  /**
   * The job as Job.fromId would build it, from what its take answered (no data: moves do not
   * need it). It is moved on the pull connection, as its take was, so the moves of leases that
   * end together go to Redis in one write.
   */
  function fromTake (queue: string, id: string, known: KnownJob): Job {
    return new Job(worker(queue), known.name, undefined, known.opts, id)
  }

  return {
    /** The next ready job of the queue, locked with `token` for `lockMs`; undefined when none is ready. */
    async take (queue: string, token: string, lockMs: number): Promise<Job | undefined> {
      const next = await worker(queue).getNextJob(token, { block: false })
      if (!next) return undefined
      if (lockMs !== WORKER_LOCK_MS) await next.extendLock(token, lockMs)
      return next
    },
    /** Sets the lock of a job `take` just answered to expire `lockMs` from now (no need to read it again). */
    async extendTaken (job: Job, token: string, lockMs: number): Promise<void> {
      await job.extendLock(token, Math.max(1, lockMs))
    },
    /** Sets the lock of a leased job to expire `lockMs` from now. */
    async extend (queue: string, id: string, token: string, lockMs: number): Promise<void> {
      const j = await job(queue, id)
      if (j) await j.extendLock(token, Math.max(1, lockMs))
    },
    /**
     * The job is over (the task ended in Postgres): it leaves the active list and frees its
     * slot. A job already finished (a webhook attempt's, done once its receiver answered 202) stays.
     */
    async finish (queue: string, id: string, token: string, known?: KnownJob): Promise<void> {
      // A job known from its take is moved without reading it; should that fail (it was
      // removed or moved meanwhile), it is read, and moved only if it is still there unfinished.
      if (known) {
        try {
          await fromTake(queue, id, known).moveToCompleted(null, token, false)
          return
        } catch {}
      }
      const j = await job(queue, id)
      if (j && !j.finishedOn) await j.moveToCompleted(null, token, false)
    },
    /** The job waits until `at`, then is ready again (a retry, or a job handed back). */
    async delay (queue: string, id: string, token: string, at: number, known?: KnownJob): Promise<void> {
      if (known) {
        try {
          await fromTake(queue, id, known).moveToDelayed(at, token)
          return
        } catch {}
      }
      const j = await job(queue, id)
      if (j) await j.moveToDelayed(at, token)
    },
    /**
     * Removes the job of an expired lease, so it can be added again with its backoff. False
     * while its lock is still held (the lock outlives the lease by a moment).
     */
    async removeExpired (queue: string, id: string): Promise<boolean> {
      const q = deps.queues.add(queue)
      return (await q.remove(id)) === 1 || !(await q.getJob(id))
    },
    async close (): Promise<void> {
      await Promise.all([...workers.values()].map((w) => w.close(true)))
    },
  }
}

export type PullDispatcher = ReturnType<typeof createPullDispatcher>
