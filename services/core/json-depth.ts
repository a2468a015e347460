/**
 * How deep JSON from outside (a request body, a task target's answer, a handler's result) may
 * nest. Everything that walks a JSON value (JSON.stringify, the storability check, the request
 * hash, Postgres' jsonb parser) recurses once per level; a 10 KiB body of brackets would
 * otherwise overflow the stack. 64 levels is far beyond any real payload.
 */
export const MAX_JSON_DEPTH = 64

/** True when the JSON text nests objects and arrays deeper than `max`; one pass, no recursion. */
export function jsonTextTooDeep (text: string, max = MAX_JSON_DEPTH): boolean {
  let depth = 0
  let inString = false
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (inString) {
      if (c === 0x5c) i++ // backslash: skip the escaped character
      else if (c === 0x22) inString = false
    } else if (c === 0x22) {
      inString = true
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > max) return true
    } else if (c === 0x7d || c === 0x5d) {
      depth--
    }
  }
  return false
}

/** True when a value nests objects and arrays deeper than `max`; iterative, so any depth is safe. */
export function valueTooDeep (value: unknown, max = MAX_JSON_DEPTH): boolean {
  const stack: { value: unknown, depth: number }[] = [{ value, depth: 0 }]
  while (stack.length > 0) {
    const top = stack.pop()!
    if (top.value === null || typeof top.value !== 'object') continue
    const depth = top.depth + 1
    if (depth > max) return true
    for (const child of Object.values(top.value)) {
      if (child !== null && typeof child === 'object') stack.push({ value: child, depth })
    }
  }
  return false
}
