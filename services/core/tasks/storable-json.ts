/**
 * Postgres text and jsonb cannot hold U+0000, and a lone UTF-16 surrogate is not valid UTF-8:
 * either makes the insert fail. Finding them first turns a would-be 500 into a 400 that
 * names the field. Returns the JSON pointer of the first offending string or key.
 */
export function findUnstorableText (value: unknown, path = ''): string | undefined {
  if (typeof value === 'string') return isStorable(value) ? undefined : path || '/'
  if (value === null || typeof value !== 'object') return undefined
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findUnstorableText(value[i], `${path}/${i}`)
      if (found) return found
    }
    return undefined
  }
  for (const [key, child] of Object.entries(value)) {
    const pointer = `${path}/${key.replace(/~/g, '~0').replace(/\//g, '~1')}`
    if (!isStorable(key)) return pointer
    const found = findUnstorableText(child, pointer)
    if (found) return found
  }
  return undefined
}

export const isStorable = (text: string): boolean => !text.includes('\u0000') && text.isWellFormed()
