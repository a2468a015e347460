import { Compile } from 'typebox/compile'
import { MAX_FIELD_ERRORS, type FieldError } from '../errors.ts'
import { toFieldErrors } from '../schema-errors.ts'
import type { TaskTypeDefinition } from './task-type.ts'

type Entry = { definition: TaskTypeDefinition, validator: ReturnType<typeof Compile> }

/** The known task types, each with its payload validator compiled once at start. */
export function createTaskTypeRegistry (definitions: readonly TaskTypeDefinition[]) {
  const entries = new Map<string, Entry>()
  for (const definition of definitions) {
    if (entries.has(definition.name)) throw new Error(`task type "${definition.name}" is defined twice`)
    entries.set(definition.name, { definition, validator: Compile(definition.payloadSchema) })
  }
  const queues = [...new Set(definitions.map((d) => d.queue))].sort()

  return {
    get: (name: string): TaskTypeDefinition | undefined => entries.get(name)?.definition,
    list: (): TaskTypeDefinition[] => [...entries.values()].map((e) => e.definition),
    queues: (): string[] => queues,
    /** Field errors of a payload, with paths rooted at `/payload`; empty when valid. */
    validatePayload (name: string, payload: unknown, pathPrefix = '/payload'): FieldError[] {
      const entry = entries.get(name)
      if (!entry || entry.validator.Check(payload)) return []
      return toFieldErrors(entry.validator.Errors(payload), pathPrefix).slice(0, MAX_FIELD_ERRORS)
    },
  }
}

export type TaskTypeRegistry = ReturnType<typeof createTaskTypeRegistry>
