import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js'
import addFormats from 'ajv-formats'
import type { FieldError } from '../errors.ts'

const MAX_ERRORS = 20

function toFieldErrors (errors: ErrorObject[] | null | undefined, prefix: string): FieldError[] {
  return (errors ?? []).slice(0, MAX_ERRORS).map((e) => {
    const missing = (e.params as { missingProperty?: string }).missingProperty
    const extra = (e.params as { additionalProperty?: string }).additionalProperty
    const leaf = missing ? `/${missing}` : extra ? `/${extra}` : ''
    return { path: `${prefix}${e.instancePath}${leaf}`, message: e.message ?? 'is invalid' }
  })
}

/**
 * JSON Schema (draft 2020-12) for the schemas tenants register. Each schema is compiled once
 * per key (tenant, type, version) and kept; a replaced version gets a new key, and `forget`
 * drops what a process no longer needs.
 */
export function createJsonSchemaValidator () {
  // strict off: a tenant's schema may carry annotations Ajv does not know (e.g. `x-…`,
  // `examples`), which are legal JSON Schema. Formats are checked, not ignored.
  const ajv = new Ajv2020({ strict: false, allErrors: true, validateFormats: true })
  addFormats.default(ajv)
  const compiled = new Map<string, ValidateFunction>()

  return {
    /** The problems of a schema itself, with paths under `path` (e.g. `/payloadSchema`); empty when usable. */
    checkSchema (schema: unknown, path: string): FieldError[] {
      if (!ajv.validateSchema(schema as object)) return toFieldErrors(ajv.errors, path)
      try {
        // Compiling finds what the meta-schema cannot: unresolvable $refs, bad regexes.
        ajv.compile(schema as object)
      } catch (err) {
        return [{ path, message: (err as Error).message.slice(0, 500) }]
      } finally {
        ajv.removeSchema(schema as object)
      }
      return []
    },
    /** Field errors of `value` against the schema cached under `key`, paths rooted at `prefix`. */
    validate (key: string, schema: unknown, value: unknown, prefix: string): FieldError[] {
      let validate = compiled.get(key)
      if (!validate) {
        validate = ajv.compile(schema as object)
        compiled.set(key, validate)
        // Ajv keeps every compiled schema; the map is what this process still asks for.
        ajv.removeSchema(schema as object)
      }
      return validate(value) ? [] : toFieldErrors(validate.errors, prefix)
    },
    forget (keyPrefix: string): void {
      for (const key of compiled.keys()) if (key.startsWith(keyPrefix)) compiled.delete(key)
    },
  }
}

export type JsonSchemaValidator = ReturnType<typeof createJsonSchemaValidator>
