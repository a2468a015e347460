import type { FieldError } from './errors.ts'

/** The shape both Ajv (request schemas) and TypeBox (payload schemas) report errors in. */
export type SchemaError = { keyword: string, instancePath: string, params: unknown, message?: string | undefined }

const list = (values: unknown[]): string => `must be one of: ${values.map((v) => JSON.stringify(v)).join(', ')}`

/**
 * One field error per schema error, paths under `prefix`. A union of constants fails once per
 * constant and once more for the union ("must be equal to constant" four times): that becomes
 * one message naming the values allowed, as does an enum.
 */
export function toFieldErrors (errors: readonly SchemaError[], prefix = ''): FieldError[] {
  const unions = new Set(errors.filter((e) => e.keyword === 'anyOf').map((e) => e.instancePath))
  const constantsAt = (path: string) => errors
    .filter((e) => e.keyword === 'const' && e.instancePath === path)
    .map((e) => (e.params as { allowedValue?: unknown }).allowedValue)
  const out: FieldError[] = []
  for (const e of errors) {
    if (e.keyword === 'const' && unions.has(e.instancePath)) continue // folded into the union's message
    const params = (e.params ?? {}) as { allowedValues?: unknown[], missingProperty?: string, additionalProperty?: string, additionalProperties?: unknown }
    // TypeBox names each extra property in an error of its own ("schema is false") as well.
    if (e.keyword === 'additionalProperties' && Array.isArray(params.additionalProperties)) continue
    if (e.keyword === 'boolean') {
      out.push({ path: `${prefix}${e.instancePath}` || '/', message: 'is not an allowed property' })
      continue
    }
    const allowed = e.keyword === 'anyOf' ? constantsAt(e.instancePath) : e.keyword === 'enum' ? params.allowedValues ?? [] : []
    const leaf = params.missingProperty ? `/${params.missingProperty}` : params.additionalProperty ? `/${params.additionalProperty}` : ''
    out.push({ path: `${prefix}${e.instancePath}${leaf}` || '/', message: allowed.length > 0 ? list(allowed) : e.message ?? 'is invalid' })
  }
  return out
}
