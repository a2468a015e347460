import type postgres from 'postgres'
import { settleDependents, type FinishedTask } from './dependency-transitions.ts'
import { hasDependentChanges, NO_DEPENDENTS, type DependentsDispatch } from './dependents-dispatch.ts'
import type { DispatchedRow } from '../tasks/transition-batch-statements.ts'

/**
 * Two tasks with dependents in common, ending at once, update those dependents' rows in
 * whatever order each statement meets them, and Postgres may break the tie by aborting one
 * transaction. All of it rolled back, so it runs again.
 */
export async function retryOnDeadlock<T> (run: () => Promise<T>, tries = 5): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run()
    } catch (err) {
      if (attempt >= tries || (err as { code?: unknown })?.code !== '40P01') throw err
    }
  }
}

/**
 * Runs a transition that may end a task others depend on in one transaction with what that
 * does to them (unblockDependents and cascadeFailure, through settleDependents): `change`
 * makes the change and says which task ended how, if one did and it has dependents, and which
 * rows it moved (`moved`). Once committed, `left` hears of the moved rows and of the
 * dependents the cascade failed (fair sharing frees the slots of those that held one), then
 * `dispatch` enqueues the dependents now ready and tells their streams: in that order, so
 * that a dependent may take the slot its dependency just gave back.
 */
export function createDependentsTransaction (sql: postgres.Sql, dispatch: DependentsDispatch | undefined,
  left?: (rows: readonly DispatchedRow[]) => Promise<void> | void) {
  return async function withDependents<T> (change: (tx: postgres.TransactionSql) =>
  Promise<{ value: T, ended?: FinishedTask | undefined, moved?: readonly (DispatchedRow | undefined)[] }>): Promise<T> {
    const { value, outcome, moved } = await retryOnDeadlock(() => sql.begin(async (tx) => {
      const { value, ended, moved } = await change(tx)
      return { value, moved, outcome: ended ? await settleDependents(tx, [ended]) : NO_DEPENDENTS }
    }))
    const rows = [...(moved ?? []), ...outcome.failed].filter((row): row is DispatchedRow => row !== undefined)
    if (left && rows.length > 0) await left(rows)
    if (dispatch && hasDependentChanges(outcome)) await dispatch(outcome)
    return value
  }
}
