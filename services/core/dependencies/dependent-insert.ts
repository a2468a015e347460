import type postgres from 'postgres'
import type { NewTaskRow, TaskRow } from '../db/schema.ts'
import { ValidationError, type FieldError } from '../errors.ts'
import { createTaskInsertStatement, isUniqueViolation } from '../tasks/task-insert-statement.ts'
import type { TaskStatus } from '../tasks/task-view.ts'
import { DEPENDENCY_FAILED } from './dependency-policy.ts'
import type { DependencyRef } from './dependency-refs.ts'
import type { DependencyView } from './dependency-repository.ts'

const isFailure = (status: TaskStatus): boolean => status === 'failed' || status === 'cancelled'
const isUnfinished = (status: TaskStatus): boolean => status === 'queued' || status === 'running'

export type StoredDependents = { rows: TaskRow[], views: Map<string, DependencyView> }

/**
 * Stores tasks of which some depend on others, in one transaction. The tasks named by id are
 * locked first (in id order, so two creates cannot deadlock): a dependency that finishes
 * meanwhile either committed before (and is seen finished here) or waits for this commit
 * and then finds the new edges. Each new task waits for (`blocked_count`) its dependencies
 * that have not completed; one whose dependency already failed under the "fail" policy is
 * stored failed at once, as it would have been had it existed when that dependency failed.
 */
export function createDependentInsert (sql: postgres.Sql) {
  async function lockDependencies (tx: postgres.TransactionSql, tenant: string, ids: string[]): Promise<Map<string, TaskStatus>> {
    if (ids.length === 0) return new Map()
    const found = await tx.unsafe<{ id: string, status: TaskStatus }[]>(`
      select id, status from tasks where tenant = $1 and id = any($2::uuid[]) order by id for no key update`, [tenant, ids])
    await tx.unsafe('update tasks set has_dependents = true where id = any($1::uuid[]) and not has_dependents', [found.map((r) => r.id)])
    return new Map(found.map((r) => [r.id, r.status]))
  }

  /**
   * `refs[i]` are the dependencies of `rows[i]`; `path(i)` is where row i's `dependsOn` sits
   * in the request. Throws ValidationError (nothing stored) for an id the tenant does not own;
   * undefined (nothing stored) when an idempotency key is taken.
   */
  async function store (tenant: string, rows: NewTaskRow[], refs: DependencyRef[][], path: (i: number) => string):
    Promise<StoredDependents | undefined> {
    const external = [...new Set(refs.flat().flatMap((r) => (r.kind === 'task' ? [r.id] : [])))]
    try {
      return await sql.begin(async (tx) => {
        const known = await lockDependencies(tx, tenant, external)
        const errors: FieldError[] = []
        refs.forEach((list, i) => list.forEach((ref, j) => {
          if (ref.kind === 'task' && !known.has(ref.id)) errors.push({ path: `${path(i)}/${j}`, message: `there is no task ${ref.id}` })
        }))
        if (errors.length > 0) throw new ValidationError(errors, 'dependsOn names tasks that do not exist; nothing was stored')

        const views = new Map<string, DependencyView>()
        const edges: { taskId: string, dependsOnId: string }[] = []
        rows.forEach((row, i) => {
          const deps = refs[i]!.map((ref) => (ref.kind === 'task'
            ? { id: ref.id, status: known.get(ref.id)! }
            : { id: rows[ref.index]!.id!, status: rows[ref.index]!.status as TaskStatus }))
          const policy = row.onDependencyFailure ?? 'fail'
          const failed = deps.find((d) => isFailure(d.status))
          row.dependencyCount = deps.length
          row.blockedCount = deps.filter((d) => d.status !== 'completed' && !(isFailure(d.status) && policy === 'run')).length
          if (failed && policy === 'fail') {
            row.status = 'failed'
            row.error = { code: DEPENDENCY_FAILED, message: `dependency ${failed.id} is ${failed.status}` }
            row.finishedAt = row.createdAt
          }
          for (const ref of refs[i]!) if (ref.kind === 'item') rows[ref.index]!.hasDependents = true
          for (const dep of deps) edges.push({ taskId: row.id!, dependsOnId: dep.id })
          // In id order, as the repository reads them back later.
          const sorted = deps.toSorted((a, b) => (a.id < b.id ? -1 : 1))
          views.set(row.id!, { dependsOn: sorted.map((d) => d.id), blockedBy: sorted.filter((d) => isUnfinished(d.status)).map((d) => d.id) })
        })

        const stored = await createTaskInsertStatement(tx, 'fail')(rows)
        await tx.unsafe(`insert into task_dependencies (task_id, depends_on_id)
          select * from unnest($1::uuid[], $2::uuid[])`, [edges.map((e) => e.taskId), edges.map((e) => e.dependsOnId)])
        return { rows: stored as TaskRow[], views }
      })
    } catch (err) {
      if (isUniqueViolation(err)) return undefined
      throw err
    }
  }

  return { store }
}

export type DependentInsert = ReturnType<typeof createDependentInsert>
