import type postgres from 'postgres'
import { settleDependents, type FinishedTask } from './dependency-transitions.ts'
import { hasDependentChanges, NO_DEPENDENTS, type DependentsDispatch } from './dependents-dispatch.ts'

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
 * makes the change and says which task ended how, if one did and it has dependents. Once
 * committed, `dispatch` enqueues the dependents now ready and tells their streams.
 */
export function createDependentsTransaction (sql: postgres.Sql, dispatch: DependentsDispatch | undefined) {
  return async function withDependents<T> (change: (tx: postgres.TransactionSql) => Promise<{ value: T, ended?: FinishedTask | undefined }>): Promise<T> {
    const { value, outcome } = await retryOnDeadlock(() => sql.begin(async (tx) => {
      const { value, ended } = await change(tx)
      return { value, outcome: ended ? await settleDependents(tx, [ended]) : NO_DEPENDENTS }
    }))
    if (dispatch && hasDependentChanges(outcome)) await dispatch(outcome)
    return value
  }
}
