import type { Config } from '../config.ts'
import type { Db } from '../db/db-client.ts'
import type { NewTaskRow, TaskRow } from '../db/schema.ts'
import { IdempotencyConflictError, PayloadTooLargeError, TaskConflictError, TaskNotFoundError, UnknownTaskTypeError, ValidationError, type FieldError } from '../errors.ts'
import { isStorableDate, STORABLE_DATE_MESSAGE } from '../db/timestamp-text.ts'
import { newTaskId, isUuid } from '../ids.ts'
import { MAX_JSON_DEPTH, valueTooDeep } from '../json-depth.ts'
import type { Logger } from '../log.ts'
import type { QueueRegistry } from '../queues/queue-registry.ts'
import type { SecretBox } from '../secrets/secret-box.ts'
import type { Backoff, Priority } from '../task-types/task-type.ts'
import type { TaskTypeCatalog } from '../task-types/task-type-catalog.ts'
import { decodeIdCursor, encodeIdCursor } from '../id-cursor.ts'
import type postgres from 'postgres'
import type { DependencyFailurePolicy } from '../dependencies/dependency-policy.ts'
import { parseDependsOn, type DependencyRef } from '../dependencies/dependency-refs.ts'
import { createDependencyRepository, type DependencyView } from '../dependencies/dependency-repository.ts'
import { createDependentInsert } from '../dependencies/dependent-insert.ts'
import { createStoredAdmission } from '../fairness/stored-admission.ts'
import { createTaskAdmission, type FairnessDeps } from '../fairness/task-admission.ts'
import { requestHash } from './request-hash.ts'
import { findUnstorable } from './storable-json.ts'
import { createTaskRepository, type TaskFilters } from './task-repository.ts'
import { toAttemptView, toTaskView, type TaskView } from './task-view.ts'

export type CreateTaskInput = {
  type: string
  payload?: unknown
  priority?: Priority
  runAt?: string
  delayMs?: number
  maxAttempts?: number
  backoff?: Backoff
  timeoutMs?: number
  tags?: string[]
  /** Task ids of the tenant, or (in a batch) "#n" for an earlier item. */
  dependsOn?: string[]
  onDependencyFailure?: DependencyFailurePolicy
}

/** Where a task came from when a schedule made it. */
export type TaskOrigin = { scheduleId: string, scheduledFor: Date }

export type TaskServiceDeps = {
  db: Db
  queues: Pick<QueueRegistry, 'enqueue'>
  /** Built-in and registered types: creating a task reads no table. */
  taskTypes: Pick<TaskTypeCatalog, 'resolve' | 'validatePayload'>
  config: Pick<Config, 'TASKLANE_MAX_PAYLOAD_BYTES' | 'idempotencyTtlMs'>
  log: Logger
  /** Seals the payload fields a type lists in `secretFields` before they are stored. */
  secrets: Pick<SecretBox, 'sealFields'>
  /** Told about tasks once they are stored (not about idempotent replays); the API counts them. */
  events?: { created?: (tasks: readonly { type: string, queue: string }[]) => void }
  /** Fair sharing (and transitions.hold for tasks stored outside this path): without it every task is dispatched at once. */
  fairness?: FairnessDeps & { hold: (ids: readonly string[]) => Promise<unknown> }
}

type DispatchableRow = TaskRow & { slot?: number | undefined }

// How often a create retries an insert whose idempotency key was freed under it.
const IDEMPOTENT_INSERT_ROUNDS = 3

/** The one place where tasks are accepted: validated, recorded in Postgres, then dispatched. */
export function createTaskService (deps: TaskServiceDeps) {
  const repo = createTaskRepository(deps.db)
  const client = (deps.db as Db & { $client: postgres.Sql }).$client
  const dependencies = createDependencyRepository(client)
  const dependents = createDependentInsert(client)
  const reserve = deps.fairness ? createTaskAdmission(deps.fairness) : undefined
  const admitStored = deps.fairness ? createStoredAdmission({ ...deps.fairness, queues: deps.queues }) : undefined

  /**
   * Inserts through `insert` with fair sharing's slots taken first (one script call per queue):
   * rows that got none are stored held; slots of rows that were not stored go back.
   */
  async function insertReserved (tenant: string, rows: NewTaskRow[],
    insert: (rows: NewTaskRow[]) => Promise<TaskRow[] | undefined>): Promise<DispatchableRow[] | undefined> {
    if (!reserve) return insert(rows)
    const reservation = await reserve(tenant, rows)
    let stored: TaskRow[] | undefined
    try {
      stored = await insert(reservation.rows)
    } finally {
      await reservation.settle(stored ?? [])
    }
    return stored?.map((row) => ({ ...row, slot: reservation.slots.get(row.id) }))
  }

  /** Views of stored rows; only tasks with dependencies cost a lookup. */
  async function views (rows: TaskRow[]): Promise<TaskView[]> {
    const found = await dependencies.views(rows.filter((r) => r.dependencyCount > 0).map((r) => r.id))
    return rows.map((row) => toTaskView(row, found.get(row.id)))
  }

  function buildRow (tenant: string, input: CreateTaskInput, idempotencyKey: string | null, now: Date,
    batchHash?: string | null, origin?: TaskOrigin): NewTaskRow {
    const type = deps.taskTypes.resolve(tenant, input.type)
    if (!type) throw new UnknownTaskTypeError(input.type)
    const payload = input.payload ?? {}
    // Before anything that walks the payload recursively (stringify, hash, storability check).
    if (valueTooDeep(payload, MAX_JSON_DEPTH - 1)) {
      throw new ValidationError([{ path: '/payload', message: `nests deeper than ${MAX_JSON_DEPTH - 1} levels` }])
    }
    const hash = batchHash !== undefined ? batchHash : idempotencyKey ? requestHash(input) : null
    const size = Buffer.byteLength(JSON.stringify(payload))
    if (size > deps.config.TASKLANE_MAX_PAYLOAD_BYTES) throw new PayloadTooLargeError(size, deps.config.TASKLANE_MAX_PAYLOAD_BYTES)
    const errors = deps.taskTypes.validatePayload(tenant, type, payload)
    const unstorable = findUnstorable(payload, '/payload')
    if (unstorable) errors.push(unstorable)
    if (input.runAt !== undefined && input.delayMs !== undefined) {
      errors.push({ path: '/delayMs', message: 'give runAt or delayMs, not both' })
    }
    const runAt = input.runAt !== undefined ? new Date(input.runAt) : new Date(now.getTime() + (input.delayMs ?? 0))
    if (!isStorableDate(runAt)) errors.push({ path: input.runAt !== undefined ? '/runAt' : '/delayMs', message: STORABLE_DATE_MESSAGE })
    if (errors.length > 0) throw new ValidationError(errors)
    return {
      id: newTaskId(),
      tenant,
      type: type.name,
      queue: type.queue,
      typeVersion: type.version,
      status: 'queued',
      priority: input.priority ?? type.defaults.priority,
      payload: deps.secrets.sealFields(payload, type.secretFields),
      attempts: 0,
      maxAttempts: input.maxAttempts ?? type.defaults.maxAttempts,
      backoff: input.backoff ?? type.defaults.backoff,
      timeoutMs: input.timeoutMs ?? type.defaults.timeoutMs,
      runAt,
      idempotencyKey,
      requestHash: hash,
      ...(input.onDependencyFailure ? { onDependencyFailure: input.onDependencyFailure } : {}),
      createdAt: now,
      updatedAt: now,
      tags: input.tags ?? [],
      ...(origin ? { scheduleId: origin.scheduleId, scheduledFor: origin.scheduledFor } : {}),
    }
  }

  /**
   * Dispatch failures are not the client's problem: the row is stored and the reconciler
   * re-enqueues it. Tasks still waiting for dependencies (or failed by one) stay out of Redis,
   * and so do held ones (the admission loop's). `reserved`: the rows went through
   * insertReserved; otherwise, with fair sharing, they take their slots now.
   */
  async function dispatch (stored: DispatchableRow[], reserved: boolean): Promise<void> {
    const rows = stored.filter((r) => r.status === 'queued' && r.blockedCount === 0 && !r.held)
    if (rows.length === 0) return
    if (admitStored && !reserved) return admitStored(rows)
    try {
      await deps.queues.enqueue(rows)
    } catch (err) {
      deps.log.warn({ err, taskIds: rows.slice(0, 10).map((r) => r.id), count: rows.length },
        'enqueue failed; tasks are stored and will be enqueued by the reconciler')
    }
  }

  return {
    /**
     * Validates a task as `create` does and returns its row without storing it: a schedule
     * stores it in the transaction that claims the due time, then calls `dispatchStored`.
     */
    build: (tenant: string, input: CreateTaskInput, origin?: TaskOrigin): NewTaskRow =>
      buildRow(tenant, input, null, new Date(), null, origin),

    /** After the caller's commit: counts and enqueues the rows it stored. */
    async dispatchStored (rows: TaskRow[]): Promise<void> {
      if (rows.length === 0) return
      deps.events?.created?.(rows)
      await dispatch(rows, false)
    },

    async create (tenant: string, input: CreateTaskInput, idempotencyKey: string | null = null):
      Promise<{ task: TaskView, replayed: boolean }> {
      const row = buildRow(tenant, input, idempotencyKey, new Date())
      const { refs, errors } = parseDependsOn(input.dependsOn, null, '/dependsOn')
      if (errors.length > 0) throw new ValidationError(errors)
      // The insert can lose to an earlier request with the same idempotency key whose task is
      // deleted before the lookup below: then the key is free again and the insert is retried.
      for (let round = 1; ; round++) {
        const insert = async (): Promise<{ rows: DispatchableRow[], view?: DependencyView } | undefined> => {
          if (refs.length === 0) {
            const [inserted] = (await insertReserved(tenant, [row], (rows) => repo.insert(rows)))!
            return inserted ? { rows: [inserted] } : undefined
          }
          const stored = await dependents.store(tenant, [row], [refs], () => '/dependsOn')
          return stored ? { rows: stored.rows, view: stored.views.get(row.id) } : undefined
        }
        let inserted = await insert()
        // A key older than TASKLANE_IDEMPOTENCY_TTL is free again: the request makes a new task.
        if (!inserted && idempotencyKey && await repo.freeExpiredKeys(tenant, [idempotencyKey], deps.config.idempotencyTtlMs) > 0) {
          inserted = await insert()
        }
        if (inserted) {
          deps.events?.created?.(inserted.rows)
          await dispatch(inserted.rows, refs.length === 0)
          return { task: toTaskView(inserted.rows[0]!, inserted.view), replayed: false }
        }
        const existing = idempotencyKey ? await repo.findByIdempotencyKey(tenant, idempotencyKey) : undefined
        if (existing) {
          if (existing.requestHash !== row.requestHash) throw new IdempotencyConflictError()
          return { task: (await views([existing]))[0]!, replayed: true }
        }
        if (round >= IDEMPOTENT_INSERT_ROUNDS) throw new TaskConflictError('Another request with this Idempotency-Key is being created and deleted at the same time; try again')
      }
    },

    /**
     * Up to 1000 tasks, all validated before any is stored, inserted in one statement and
     * enqueued in bulk. With an Idempotency-Key, item i is stored under `batchItemKey(key, i)`
     * and every item carries the hash of the whole batch, so a replay returns the original tasks.
     */
    async createBatch (tenant: string, inputs: readonly CreateTaskInput[], idempotencyKey: string | null = null):
      Promise<{ tasks: TaskView[], replayed: boolean }> {
      const now = new Date()
      const errors: FieldError[] = []
      const rows: NewTaskRow[] = []
      const refs: DependencyRef[][] = []
      inputs.forEach((input, i) => {
        const parsed = parseDependsOn(input.dependsOn, i, `/tasks/${i}/dependsOn`)
        refs.push(parsed.refs)
        errors.push(...parsed.errors)
        try {
          rows.push(buildRow(tenant, input, idempotencyKey ? batchItemKey(idempotencyKey, i) : null, now, null))
        } catch (err) {
          if (err instanceof ValidationError) errors.push(...err.errors.map((e) => ({ path: `/tasks/${i}${e.path}`, message: e.message })))
          else if (err instanceof UnknownTaskTypeError) errors.push({ path: `/tasks/${i}/type`, message: err.message })
          else if (err instanceof PayloadTooLargeError) errors.push({ path: `/tasks/${i}/payload`, message: err.message })
          else throw err
        }
      })
      if (errors.length > 0) {
        const bad = new Set(errors.map((e) => e.path.split('/')[2])).size
        throw new ValidationError(errors, `${bad} of ${inputs.length} tasks are invalid; none was stored`)
      }
      // Hashed once the inputs are known to be sane (the hash walks them recursively).
      const hash = idempotencyKey ? requestHash({ tasks: inputs }) : null
      for (const row of rows) row.requestHash = hash
      // One statement (or, with dependencies, one transaction), so all or nothing; undefined
      // when some keys were taken: this is a replay (or a reused key), and nothing was kept.
      const withGraph = refs.some((list) => list.length > 0)
      let graph: Awaited<ReturnType<typeof dependents.store>>
      const insertAll = async (): Promise<DispatchableRow[] | undefined> => {
        if (!withGraph) return insertReserved(tenant, rows, (all) => repo.insertAll(all))
        graph = await dependents.store(tenant, rows, refs, (i) => `/tasks/${i}/dependsOn`)
        return graph?.rows
      }
      let inserted = await insertAll()
      const keys = rows.map((r) => r.idempotencyKey!)
      if (!inserted && idempotencyKey && await repo.freeExpiredKeys(tenant, keys, deps.config.idempotencyTtlMs) > 0) {
        inserted = await insertAll()
      }
      if (inserted) {
        const order = new Map(rows.map((r, i) => [r.id, i]))
        inserted.sort((a, b) => order.get(a.id)! - order.get(b.id)!)
        deps.events?.created?.(inserted)
        await dispatch(inserted, !withGraph)
        return { tasks: inserted.map((row) => toTaskView(row, graph?.views.get(row.id))), replayed: false }
      }
      const existing = await repo.findByIdempotencyKeys(tenant, keys)
      if (existing.length !== rows.length || existing.some((r) => r.requestHash !== hash)) throw new IdempotencyConflictError()
      return { tasks: await views(existing), replayed: true }
    },

    async get (tenant: string, id: string): Promise<TaskView> {
      const row = isUuid(id) ? await repo.findById(tenant, id) : undefined
      if (!row) throw new TaskNotFoundError(id)
      return (await views([row]))[0]!
    },

    async list (tenant: string, filters: Omit<TaskFilters, 'beforeId'> & { cursor?: string | undefined }) {
      const beforeId = filters.cursor === undefined ? undefined : decodeIdCursor(filters.cursor)
      const rows = await repo.list(tenant, { ...filters, beforeId, limit: filters.limit + 1 })
      const page = rows.slice(0, filters.limit)
      const last = page.at(-1)
      return {
        items: await views(page),
        nextCursor: rows.length > filters.limit && last ? encodeIdCursor(last.id) : null,
      }
    },

    async attempts (tenant: string, id: string) {
      await this.get(tenant, id)
      return (await repo.listAttempts(id)).map(toAttemptView)
    },
  }
}

export type TaskService = ReturnType<typeof createTaskService>

/**
 * The key item `i` of a batch is stored under. A client's key is visible ASCII without spaces
 * (the header schema), so a key with a space is never one a single create could take.
 */
export const batchItemKey = (key: string, i: number): string => `${key} ${i}`
