import type postgres from 'postgres'
import type { FieldError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { JsonSchemaValidator } from './json-schema-validator.ts'
import { internalQueueName, type RegisteredType } from './registered-type.ts'
import { createTaskTypeRepository, TASK_TYPES_CHANNEL, type TaskTypeRecord } from './task-type-repository.ts'
import type { TaskTypeRegistry } from './task-type-registry.ts'
import type { TaskDefaults } from './task-type.ts'

/** What creating or leasing a task needs to know of its type, built-in or registered. */
export type ResolvedType = {
  name: string
  /** The queue in BullMQ: a built-in's own, or `<tenant>/<queue>`. */
  queue: string
  version: number
  defaults: TaskDefaults
  /** Top-level payload fields stored sealed and masked on read (built-ins only). */
  secretFields?: readonly string[] | undefined
  registered: RegisteredType | null
}

// LISTEN/NOTIFY tells every process of a change within milliseconds; the periodic reload is
// the safety net for a notification missed while the listening connection was down.
const REFRESH_MS = 30_000

/**
 * Every process's view of the task types: the built-ins plus every tenant's registered types,
 * held in memory, so creating a task reads no table. Changes arrive by Postgres
 * LISTEN/NOTIFY (sent in the transaction that makes them) and a reload every 30 s.
 */
export function createTaskTypeCatalog (deps: {
  sql: postgres.Sql
  builtins: TaskTypeRegistry
  validator: JsonSchemaValidator
  log: Logger
  refreshMs?: number
}) {
  const repo = createTaskTypeRepository(deps.sql)
  const types = new Map<string, RegisteredType>()
  const queueListeners: ((queues: string[]) => void)[] = []
  const key = (tenant: string, name: string) => `${tenant}\u0000${name}`
  let timer: NodeJS.Timeout | undefined
  let unlisten: (() => Promise<void>) | undefined

  function toRegistered (r: TaskTypeRecord): RegisteredType {
    return { ...r, internalQueue: internalQueueName(r.tenant, r.queue) }
  }

  function registeredQueues (): string[] {
    return [...new Set([...types.values()].map((t) => t.internalQueue))].sort()
  }

  function announceQueues (): void {
    const queues = registeredQueues()
    for (const listener of queueListeners) listener(queues)
  }

  /** Takes a record in (from this process's own write, a notification or a reload). */
  function apply (record: TaskTypeRecord): void {
    const previous = types.get(key(record.tenant, record.name))
    if (previous && previous.version > record.version) return
    types.set(key(record.tenant, record.name), toRegistered(record))
    // A type that moved to another queue or executor may change what a worker consumes.
    if (!previous || previous.internalQueue !== internalQueueName(record.tenant, record.queue) ||
      previous.executor.kind !== record.executor.kind) announceQueues()
  }

  async function reload (): Promise<void> {
    const records = await repo.listAll()
    const seen = new Set<string>()
    for (const record of records) { apply(record); seen.add(key(record.tenant, record.name)) }
    for (const k of types.keys()) if (!seen.has(k)) types.delete(k)
  }

  async function reloadOne (tenant: string, name: string): Promise<void> {
    const record = await repo.find(tenant, name)
    if (record) apply(record)
    else types.delete(key(tenant, name))
  }

  function find (tenant: string, name: string): RegisteredType | undefined {
    return types.get(key(tenant, name))
  }

  return {
    /**
     * Loads every type, then listens for changes. A database that is down at start does not
     * stop the process: the periodic reload tries again (and listens once it can).
     */
    async start (): Promise<void> {
      const warn = (err: unknown) => deps.log.warn({ err }, 'reloading the task types failed; trying again later')
      const listen = async (): Promise<void> => {
        const listening = await deps.sql.listen(TASK_TYPES_CHANNEL, (payload) => {
          const { tenant, name } = JSON.parse(payload) as { tenant: string, name: string }
          reloadOne(tenant, name).catch(warn)
        }, () => {
          // (Re)connected: whatever was announced while the connection was down is read now.
          reload().catch(warn)
        })
        unlisten = listening.unlisten
      }
      await reload().catch(warn)
      await listen().catch(warn)
      timer = setInterval(() => {
        reload().catch(warn)
        if (!unlisten) listen().catch(warn)
      }, deps.refreshMs ?? REFRESH_MS)
      timer.unref()
    },
    async close (): Promise<void> {
      clearInterval(timer)
      await unlisten?.().catch(() => {})
    },
    apply,
    /** A live type the tenant may create tasks of: a built-in or one of its registered types. */
    resolve (tenant: string, name: string): ResolvedType | undefined {
      const builtin = deps.builtins.get(name)
      if (builtin) return { name, queue: builtin.queue, version: 1, defaults: builtin.defaults, secretFields: builtin.secretFields, registered: null }
      const type = find(tenant, name)
      if (!type || type.deletedAt) return undefined
      return { name, queue: type.internalQueue, version: type.version, defaults: type.defaults, registered: type }
    },
    /** A registered type, deleted or not (tasks created before a DELETE still run to the end). */
    registered: find,
    /** The tenant's live registered types, by name. */
    listRegistered (tenant: string): RegisteredType[] {
      return [...types.values()].filter((t) => t.tenant === tenant && !t.deletedAt).sort((a, b) => a.name.localeCompare(b.name))
    },
    /** Payload field errors (paths under `prefix`); empty when valid or the type has no schema. */
    validatePayload (tenant: string, type: ResolvedType, payload: unknown, prefix = '/payload'): FieldError[] {
      const registered = type.registered
      if (!registered) return deps.builtins.validatePayload(type.name, payload, prefix)
      if (registered.payloadSchema == null) return []
      return deps.validator.validate(`${tenant}\u0000${type.name}\u0000${registered.version}\u0000payload`,
        registered.payloadSchema, payload, prefix)
    },
    /** Result field errors against the type's result schema (the current version's). */
    validateResult (tenant: string, name: string, result: unknown): FieldError[] {
      const registered = find(tenant, name)
      if (!registered || registered.resultSchema == null) return []
      return deps.validator.validate(`${tenant}\u0000${name}\u0000${registered.version}\u0000result`,
        registered.resultSchema, result, '/result')
    },
    /** Every queue: the built-ins' and each registered type's (deleted ones' too, until their tasks end). */
    queues (): string[] {
      return [...new Set([...deps.builtins.queues(), ...registeredQueues()])].sort()
    },
    /** The queues of webhook types, which workers consume (deleted types' too, until their tasks end). */
    webhookQueues (): string[] {
      return [...new Set([...types.values()].filter((t) => t.executor.kind === 'webhook').map((t) => t.internalQueue))].sort()
    },
    /** The queues a tenant sees: the built-ins' and its own. */
    queuesOf (tenant: string): string[] {
      const own = [...types.values()].filter((t) => t.tenant === tenant).map((t) => t.internalQueue)
      return [...new Set([...deps.builtins.queues(), ...own])].sort()
    },
    /** Called with every registered queue whenever a new one appears. */
    onQueues (listener: (queues: string[]) => void): void {
      queueListeners.push(listener)
      listener(registeredQueues())
    },
    reload,
  }
}

export type TaskTypeCatalog = ReturnType<typeof createTaskTypeCatalog>
