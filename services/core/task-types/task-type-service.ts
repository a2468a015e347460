import type { Queue } from 'bullmq'
import { BuiltinTaskTypeError, NotWebhookTypeError, TaskTypeLimitError, TaskTypeNotFoundError, ValidationError, type FieldError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { JsonSchemaValidator } from './json-schema-validator.ts'
import { internalQueueName, MAX_SCHEMA_BYTES, MAX_TYPES_PER_TENANT, TYPE_NAME, type PutTaskTypeInput, type RegisteredType } from './registered-type.ts'
import { generateSigningSecret } from '../outbound/webhook-signer.ts'
import type { TaskTypeCatalog } from './task-type-catalog.ts'
import { createTaskTypeRepository, type TaskTypeRecord } from './task-type-repository.ts'
import type { TaskTypeRegistry } from './task-type-registry.ts'
import { DEFAULT_TASK_DEFAULTS, type TaskTypeDefinition } from './task-type.ts'
import type postgres from 'postgres'

/** How long the replaced secret keeps signing beside the new one, so receivers can switch over. */
const PREVIOUS_SECRET_TTL_MS = 24 * 3_600_000

/** The public shape of a type, built-in or registered; `executor` never carries a secret. */
export function toTaskTypeView (type: RegisteredType) {
  return {
    name: type.name,
    version: type.version,
    queue: type.queue,
    builtin: false,
    description: type.description,
    payloadSchema: type.payloadSchema ?? null,
    resultSchema: type.resultSchema ?? null,
    defaults: type.defaults,
    concurrency: type.concurrency,
    rateLimit: type.rateLimit,
    executor: type.executor,
    createdAt: type.createdAt.toISOString() as string | null,
    updatedAt: type.updatedAt.toISOString() as string | null,
  }
}
export type TaskTypeView = ReturnType<typeof toTaskTypeView>

function builtinView (type: TaskTypeDefinition): TaskTypeView {
  return {
    name: type.name, version: 1, queue: type.queue, builtin: true, description: type.description,
    payloadSchema: type.payloadSchema, resultSchema: null, defaults: type.defaults, concurrency: null, rateLimit: null,
    executor: { kind: 'builtin' } as never, createdAt: null, updatedAt: null,
  }
}

/**
 * Registering, replacing and deleting a tenant's task types. The type's `concurrency` and
 * `rateLimit` become BullMQ's global limits of its queue, so they hold across every process.
 */
export function createTaskTypeService (deps: {
  sql: postgres.Sql
  builtins: TaskTypeRegistry
  catalog: TaskTypeCatalog
  validator: JsonSchemaValidator
  queues: { get: (name: string) => Queue }
  /** Seals a signing secret for storage; the client sees the plain one once. */
  seal: (secret: string) => string
  log: Logger
}) {
  const repo = createTaskTypeRepository(deps.sql)

  function checkName (name: string): void {
    if (deps.builtins.get(name)) throw new BuiltinTaskTypeError(name)
    if (!TYPE_NAME.test(name)) {
      throw new ValidationError([{ path: '/name', message: `must match ${TYPE_NAME.source}` }])
    }
  }

  function checkSchemas (input: PutTaskTypeInput): void {
    const errors: FieldError[] = []
    for (const field of ['payloadSchema', 'resultSchema'] as const) {
      const schema = input[field]
      if (schema === undefined) continue
      if (Buffer.byteLength(JSON.stringify(schema)) > MAX_SCHEMA_BYTES) {
        errors.push({ path: `/${field}`, message: `must be at most ${MAX_SCHEMA_BYTES} bytes of JSON` })
      } else {
        errors.push(...deps.validator.checkSchema(schema, `/${field}`))
      }
    }
    if (errors.length > 0) throw new ValidationError(errors, 'A schema is not valid JSON Schema (draft 2020-12)')
  }

  /** Limits live on the queue: when several types share one, the last type written sets them. */
  async function applyLimits (record: TaskTypeRecord): Promise<void> {
    const queue = deps.queues.get(internalQueueName(record.tenant, record.queue))
    await Promise.all([
      record.concurrency === null ? queue.removeGlobalConcurrency() : queue.setGlobalConcurrency(record.concurrency),
      record.rateLimit === null ? queue.removeGlobalRateLimit() : queue.setGlobalRateLimit(record.rateLimit.max, record.rateLimit.perMs),
    ])
  }

  function live (tenant: string, name: string): RegisteredType {
    const type = deps.catalog.registered(tenant, name)
    if (!type || type.deletedAt) throw new TaskTypeNotFoundError(name)
    return type
  }

  return {
    list (tenant: string): TaskTypeView[] {
      return [...deps.builtins.list().map(builtinView), ...deps.catalog.listRegistered(tenant).map(toTaskTypeView)]
    },
    get (tenant: string, name: string): TaskTypeView {
      const builtin = deps.builtins.get(name)
      if (builtin) return builtinView(builtin)
      return toTaskTypeView(live(tenant, name))
    },
    /** Creates or replaces the type; a new webhook type's answer carries its signing secret, once. */
    async put (tenant: string, name: string, input: PutTaskTypeInput):
      Promise<{ type: TaskTypeView, created: boolean, signingSecret?: string }> {
      checkName(name)
      checkSchemas(input)
      const newSecret = input.executor.kind === 'webhook' ? generateSigningSecret() : null
      const written = await repo.upsert({
        tenant, name,
        queue: input.queue ?? name,
        description: input.description ?? '',
        payloadSchema: input.payloadSchema ?? null,
        resultSchema: input.resultSchema ?? null,
        defaults: { ...DEFAULT_TASK_DEFAULTS, ...input.defaults },
        concurrency: input.concurrency ?? null,
        rateLimit: input.rateLimit ?? null,
        executor: input.executor.kind === 'webhook'
          ? { kind: 'webhook', url: input.executor.url, timeoutMs: input.executor.timeoutMs ?? 30_000 }
          : { kind: 'pull' },
      }, MAX_TYPES_PER_TENANT, newSecret && deps.seal(newSecret))
      if (!written) throw new TaskTypeLimitError(MAX_TYPES_PER_TENANT)
      // This process sees its own write at once; the others hear the notification.
      deps.catalog.apply(written.record)
      await applyLimits(written.record)
      deps.log.info({ tenant, type: name, version: written.record.version }, written.created ? 'task type registered' : 'task type replaced')
      const type = toTaskTypeView(deps.catalog.registered(tenant, name)!)
      // The repository answers the stored secret only when this write stored the new one.
      return written.secret && newSecret ? { type, created: written.created, signingSecret: newSecret } : { type, created: written.created }
    },
    /** No task of the type can be created after this; those already created run to the end. */
    async delete (tenant: string, name: string): Promise<void> {
      if (deps.builtins.get(name)) throw new BuiltinTaskTypeError(name)
      if (!(await repo.softDelete(tenant, name))) throw new TaskTypeNotFoundError(name)
      const record = await repo.find(tenant, name)
      if (record) deps.catalog.apply(record)
    },
    async rotateSecret (tenant: string, name: string): Promise<{ type: TaskTypeView, signingSecret: string }> {
      if (deps.builtins.get(name)) throw new BuiltinTaskTypeError(name)
      const type = live(tenant, name)
      if (type.executor.kind !== 'webhook') throw new NotWebhookTypeError(name)
      const secret = generateSigningSecret()
      const record = await repo.rotateSecret(tenant, name, deps.seal(secret), new Date(Date.now() + PREVIOUS_SECRET_TTL_MS))
      if (!record) throw new TaskTypeNotFoundError(name)
      deps.catalog.apply(record)
      return { type: toTaskTypeView(deps.catalog.registered(tenant, name)!), signingSecret: secret }
    },
  }
}

export type TaskTypeService = ReturnType<typeof createTaskTypeService>
