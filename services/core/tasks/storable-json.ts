import { MAX_JSON_DEPTH } from '../json-depth.ts'

/**
 * What Postgres jsonb cannot hold though JSON.parse accepts it: U+0000 and unpaired UTF-16
 * surrogates in strings or keys, and numbers beyond double range (1e999 parses to Infinity,
 * which is no JSON value at all). Finding them first turns a would-be 500 into a 400 that
 * names the field. Nesting deeper than MAX_JSON_DEPTH is an offence too, which also bounds
 * this recursion. Returns the JSON pointer of the first offence and why.
 */
export function findUnstorable (value: unknown, path = '', depth = 0): { path: string, message: string } | undefined {
  if (typeof value === 'string') return isStorable(value) ? undefined : { path: path || '/', message: TEXT }
  if (typeof value === 'number') return Number.isFinite(value) ? undefined : { path: path || '/', message: 'is a number out of range' }
  if (value === null || typeof value !== 'object') return undefined
  if (depth >= MAX_JSON_DEPTH) return { path: path || '/', message: `nests deeper than ${MAX_JSON_DEPTH} levels` }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorable(value[i], `${path}/${i}`, depth + 1)
      if (found) return found
    }
    return undefined
  }
  for (const [key, child] of Object.entries(value)) {
    const pointer = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
    if (!isStorable(key)) return { path: pointer, message: TEXT }
    const found = findUnstorable(child, pointer, depth + 1)
    if (found) return found
  }
  return undefined
}

const TEXT = 'contains a NUL character or an unpaired surrogate, which cannot be stored'

export const isStorable = (text: string): boolean => !text.includes('\u0000') && text.isWellFormed()

/**
 * A handler's result as jsonb can hold it: NULs and lone surrogates become U+FFFD and
 * non-finite numbers null (as JSON.stringify writes them). A result fetched from the outside
 * world (a binary HTTP body, say) must not make the task impossible to record.
 */
export function toStorable (value: unknown): unknown {
  if (!findUnstorable(value)) return value
  return JSON.parse(JSON.stringify(value, (_key, v: unknown) =>
    typeof v === 'string' ? v.replaceAll('\u0000', '\uFFFD').toWellFormed() : v))
}
