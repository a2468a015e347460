import type { FieldError } from '../errors.ts'
import { isUuid } from '../ids.ts'
import { MAX_DEPENDENCIES } from './dependency-policy.ts'

/** One entry of `dependsOn`: a stored task, or an earlier item of the same batch ("#2"). */
export type DependencyRef = { kind: 'task', id: string } | { kind: 'item', index: number }

const ITEM_REF = /^#(\d{1,4})$/

/**
 * Reads a task's `dependsOn`. `itemIndex` is the item's place in its batch, or null for a
 * single create (where "#n" has nothing to refer to). `path` is where the field sits in the
 * request (`/dependsOn` or `/tasks/3/dependsOn`), so each error names the item and entry.
 * A reference can only point backwards, which is what keeps every graph acyclic.
 */
export function parseDependsOn (dependsOn: readonly string[] | undefined, itemIndex: number | null, path: string):
  { refs: DependencyRef[], errors: FieldError[] } {
  const refs: DependencyRef[] = []
  const errors: FieldError[] = []
  if (!dependsOn) return { refs, errors }
  if (dependsOn.length > MAX_DEPENDENCIES) {
    errors.push({ path, message: `names ${dependsOn.length} dependencies; at most ${MAX_DEPENDENCIES} are allowed` })
    return { refs, errors }
  }
  const seen = new Set<string>()
  dependsOn.forEach((entry, j) => {
    const at = `${path}/${j}`
    const item = ITEM_REF.exec(entry)
    const key = entry.toLowerCase()
    if (seen.has(key)) {
      errors.push({ path: at, message: `names ${entry} a second time` })
    } else if (item) {
      const index = Number(item[1])
      if (itemIndex === null) errors.push({ path: at, message: `"${entry}" refers to a batch item; use task ids outside POST /v1/tasks/batch` })
      else if (index >= itemIndex) errors.push({ path: at, message: `"${entry}" must refer to an earlier item of this batch (this is item #${itemIndex})` })
      else refs.push({ kind: 'item', index })
    } else if (isUuid(entry)) {
      refs.push({ kind: 'task', id: entry.toLowerCase() })
    } else {
      errors.push({ path: at, message: `"${entry}" is neither a task id nor a reference "#<index>" to an earlier batch item` })
    }
    seen.add(key)
  })
  return { refs, errors }
}
