import { Agent as HttpAgent, request as httpRequest, type IncomingMessage } from 'node:http'
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https'
import type { components, paths } from './openapi.d.ts'

// Every shape comes from the OpenAPI document the API serves (src/openapi.d.ts, generated).
export type Lease = components['schemas']['Lease']
export type LeasedTask = Lease['task']
export type HeartbeatReply = paths['/v1/leases/{leaseId}/heartbeat']['post']['responses'][200]['content']['application/json']
export type Task = components['schemas']['Task']

export type TaskContext = {
  /** Fires when the task is cancelled, its deadline passes, its lease is lost, or the worker stops after its grace period. */
  signal: AbortSignal
  /** Reports progress (0..100 or an object); sent at once, with a heartbeat. */
  progress: (value: unknown) => Promise<void>
  leaseId: string
  attempt: number
  deadline: Date
}

export type TaskHandler = (task: LeasedTask, ctx: TaskContext) => Promise<unknown>

export type WorkerOptions = {
  /** The Tasklane API, e.g. https://tasklane.example.com */
  url: string
  apiKey: string
  /** One handler per registered pull type; the keys are the types leased. */
  handlers: Record<string, TaskHandler>
  /** Tasks run at once (default 10). */
  concurrency?: number
  /** How long a lease lasts without a heartbeat (default 60 s). */
  visibilityMs?: number
  /** How often a running task's lease is extended (default a third of visibilityMs). */
  heartbeatMs?: number
  /** Long-poll wait of each lease request (default 20 s). */
  waitMs?: number
  workerId?: string
  /** Called with errors the worker survives (a lease request that failed, a heartbeat that did not arrive). */
  onError?: (err: unknown) => void
}

/** Throw this (or any error with `retryable: false`) to fail the task at once, without retries. */
export class NonRetryableError extends Error {
  readonly retryable = false
  readonly code: string
  constructor (message: string, code = 'NON_RETRYABLE') {
    super(message)
    this.name = 'NonRetryableError'
    this.code = code
  }
}

/** Thrown by the client when the API answers with a problem document. */
export class TasklaneApiError extends Error {
  readonly status: number
  readonly problem: { type?: string, detail?: string } | undefined
  constructor (status: number, problem: { type?: string, detail?: string } | undefined) {
    super(`Tasklane answered ${status}: ${problem?.detail ?? problem?.type ?? 'error'}`)
    this.name = 'TasklaneApiError'
    this.status = status
    this.problem = problem
  }
  get leaseLost (): boolean { return this.status === 409 && (this.problem?.type ?? '').endsWith('lease-lost') }
}

const CANCELLED = 'cancelled'
const LEASE_LOST = 'lease lost'
const DEADLINE = 'deadline'
const SHUTDOWN = 'worker stopping'

function errorOf (err: unknown): { message: string, code: string, retryable: boolean } {
  const e = err as { message?: unknown, code?: unknown, retryable?: unknown }
  const message = typeof e?.message === 'string' && e.message !== '' ? e.message : String(err)
  const code = typeof e?.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(e.code) ? e.code : 'ERROR'
  return { message: message.slice(0, 2_000), code, retryable: e?.retryable !== false }
}

/**
 * A pull worker: long-polls Tasklane for tasks of the handlers' types, runs up to
 * `concurrency` at once, extends each lease while its handler runs, and completes or fails it.
 * `stop()` takes no new work, lets running tasks finish within the grace period, then aborts
 * the rest and gives them back (a retryable failure, so Tasklane queues them again).
 */
export function createWorker (options: WorkerOptions) {
  const base = options.url.replace(/\/+$/, '')
  const types = Object.keys(options.handlers)
  const concurrency = options.concurrency ?? 10
  const visibilityMs = options.visibilityMs ?? 60_000
  const heartbeatMs = options.heartbeatMs ?? Math.max(500, Math.floor(visibilityMs / 3))
  const waitMs = options.waitMs ?? 20_000
  const workerId = options.workerId ?? `node-${process.pid}`
  const onError = options.onError ?? (() => {})
  if (types.length === 0) throw new Error('createWorker needs at least one handler')

  const running = new Map<string, { controller: AbortController, done: Promise<void> }>()
  let stopping = false
  let loop: Promise<void> | undefined
  const polls = new AbortController()
  let slotFreed: (() => void) | undefined
  // Tasks whose handler has returned and whose complete is on its way: their slots free
  // within a round trip.
  let completing = 0

  // node:http rather than fetch: every task costs a complete, and fetch (WHATWG streams, a wasm
  // parser) spends about three times the CPU of a plain request on it. Connections are kept
  // alive and reused, as fetch's were.
  const secure = new URL(base).protocol === 'https:'
  const agent = secure ? new HttpsAgent({ keepAlive: true }) : new HttpAgent({ keepAlive: true })
  const send = secure ? httpsRequest : httpRequest

  function call<T> (path: string, body: unknown, signal?: AbortSignal): Promise<T> {
    const data = JSON.stringify(body)
    return new Promise<T>((resolve, reject) => {
      const answered = (res: IncomingMessage) => {
        const chunks: Buffer[] = []
        res.on('data', (chunk: Buffer) => chunks.push(chunk))
        res.on('error', reject)
        res.on('end', () => {
          try {
            const text = Buffer.concat(chunks).toString('utf8')
            const json = text === '' ? undefined : JSON.parse(text)
            const status = res.statusCode ?? 0
            if (status < 200 || status > 299) reject(new TasklaneApiError(status, json))
            else resolve(json as T)
          } catch (err) {
            reject(err)
          }
        })
      }
      const req = send(`${base}${path}`, {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data), authorization: `Bearer ${options.apiKey}` },
        ...(signal ? { signal } : {}),
      }, answered)
      req.on('error', reject)
      req.end(data)
    })
  }

  async function run (lease: Lease, controller: AbortController): Promise<void> {
    const deadline = new Date(lease.task.deadline)
    const deadlineTimer = setTimeout(() => controller.abort(DEADLINE), Math.max(0, deadline.getTime() - Date.now()))
    const beat = async (progress?: unknown): Promise<void> => {
      try {
        const reply = await call<HeartbeatReply>(`/v1/leases/${lease.leaseId}/heartbeat`, progress === undefined ? {} : { progress })
        if (reply.cancelRequested) controller.abort(CANCELLED)
      } catch (err) {
        if (err instanceof TasklaneApiError && err.leaseLost) controller.abort(LEASE_LOST)
        else onError(err)
      }
    }
    const heartbeat = setInterval(() => { void beat() }, heartbeatMs)
    let completes = false
    const ctx: TaskContext = { signal: controller.signal, progress: (value) => beat(value), leaseId: lease.leaseId, attempt: lease.task.attempt, deadline }
    try {
      const handler = options.handlers[lease.task.type]!
      const result = await handler(lease.task, ctx)
      if (controller.signal.aborted && controller.signal.reason !== DEADLINE) return
      completing++
      completes = true
      await call(`/v1/leases/${lease.leaseId}/complete`, { result: result ?? null })
    } catch (err) {
      const reason = controller.signal.reason
      // Cancelled or lost: Tasklane has already recorded the end; a complete or fail would be 409.
      if (reason === CANCELLED || reason === LEASE_LOST) return
      const failure = reason === SHUTDOWN
        ? { message: 'the worker stopped before the task finished', code: 'WORKER_SHUTDOWN', retryable: true }
        : reason === DEADLINE
          ? { message: 'the attempt did not finish before its deadline', code: 'TIMEOUT', retryable: true }
          : errorOf(err)
      await call(`/v1/leases/${lease.leaseId}/fail`, {
        error: { message: failure.message, code: failure.code },
        retryable: failure.retryable,
        ...(reason === SHUTDOWN ? { retryAfterMs: 0 } : {}),
      }).catch((e: unknown) => { if (!(e instanceof TasklaneApiError && e.leaseLost)) onError(e) })
    } finally {
      if (completes) completing--
      clearTimeout(deadlineTimer)
      clearInterval(heartbeat)
    }
  }

  function launch (lease: Lease): void {
    const entry = { controller: new AbortController(), done: Promise.resolve() }
    entry.done = run(lease, entry.controller)
      .catch(onError)
      .finally(() => { running.delete(lease.leaseId); slotFreed?.() })
    running.set(lease.leaseId, entry)
  }

  async function poll (): Promise<void> {
    while (!stopping) {
      const free = concurrency - running.size
      // With fewer than half the slots free, completes on their way are waited for: the tasks
      // of one lease tend to end together, and one lease request then takes all their slots
      // instead of one request for each. Free slots wait only while answers are on their way,
      // and never half of them.
      if (free <= 0 || (free * 2 < concurrency && completing > 0)) {
        await new Promise<void>((resolve) => { slotFreed = resolve })
        continue
      }
      try {
        const { items } = await call<{ items: Lease[] }>('/v1/leases',
          { types, max: Math.min(free, 100), waitMs, visibilityMs, workerId }, polls.signal)
        for (const lease of items) {
          // Leased as the worker began to stop: give it back at once.
          if (stopping) {
            await call(`/v1/leases/${lease.leaseId}/fail`, { error: { message: 'the worker stopped', code: 'WORKER_SHUTDOWN' }, retryable: true, retryAfterMs: 0 }).catch(onError)
          } else {
            launch(lease)
          }
        }
      } catch (err) {
        if (stopping) break
        onError(err)
        await new Promise((resolve) => setTimeout(resolve, 1_000))
      }
    }
  }

  return {
    workerId,
    /** Starts leasing; resolves at once. */
    start (): void {
      loop ??= poll()
    },
    /** Tasks running now. */
    get active (): number { return running.size },
    /**
     * Takes no new work; waits up to `graceMs` (default 25 s) for running tasks, then aborts the
     * rest and gives them back to Tasklane.
     */
    async stop (graceMs = 25_000): Promise<void> {
      stopping = true
      polls.abort()
      slotFreed?.()
      await loop
      const all = Promise.all([...running.values()].map((r) => r.done))
      const timer = new Promise<'timeout'>((resolve) => setTimeout(resolve, graceMs, 'timeout').unref())
      if (await Promise.race([all.then(() => 'done' as const), timer]) === 'timeout') {
        for (const r of running.values()) r.controller.abort(SHUTDOWN)
        await all
      }
      agent.destroy()
    },
  }
}

export type TasklaneWorker = ReturnType<typeof createWorker>
