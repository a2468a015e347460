import type postgres from 'postgres'
import type { TaskRow } from '../db/schema.ts'
import { TASK_RETURNING, toTaskRow } from '../tasks/task-row-mapper.ts'
import { owedNotificationsCte } from '../notifications/owed-notifications.ts'
import { DEPENDENCY_FAILED } from './dependency-policy.ts'

// What a task's end (or its retry) does to the tasks that depend on it. Each function runs
// inside the transaction of the transition that ended (or retried) the task, in a statement
// after the one that changed its status: that later statement's snapshot sees every edge
// committed before the status update got its row lock (creating a dependent locks its
// dependencies' rows), so no dependent is missed and none is counted twice.
//
// The work is proportional to the edges touched: a dependent keeps a counter of the
// dependencies it still waits for (blocked_count), and a finished task decrements the
// counters of its direct dependents in one statement. A fan-in of N costs N single-row
// decrements, a chain of N costs N statements; nothing rescans a dependent's other edges.

export type FinishedTask = { id: string, status: 'completed' | 'failed' | 'cancelled' }

export type DependentsOutcome = {
  /** Dependents that now wait for nothing: to enqueue once the transaction has committed. */
  ready: TaskRow[]
  /** Dependents that still wait, with how many dependencies are left. */
  waiting: { id: string, blockedCount: number }[]
  /** Dependents ended failed (code DEPENDENCY_FAILED), at any depth. */
  failed: TaskRow[]
}

/** How many of task `t`'s dependencies it still waits for, counted from scratch. */
const PENDING = `(select count(*)::int from task_dependencies e join tasks u on u.id = e.depends_on_id
  where e.task_id = t.id and u.status <> 'completed'
    and not (u.status in ('failed', 'cancelled') and t.on_dependency_failure = 'run'))`

/** Whether one of task `t`'s dependencies failed in a way its policy does not accept. */
const DOOMED = `(t.on_dependency_failure = 'fail' and exists (select 1 from task_dependencies e join tasks u on u.id = e.depends_on_id
  where e.task_id = t.id and u.status in ('failed', 'cancelled')))`

// Dependents under "fail" of failed or cancelled tasks end failed, naming the first such
// dependency. Only waiting (queued) dependents: one that runs already is left to finish.
const FAIL_DEPENDENTS = `
  with failed as (
  update tasks t set status = 'failed', finished_at = now(), updated_at = now(),
         error = jsonb_build_object('code', '${DEPENDENCY_FAILED}', 'message', 'dependency ' || c.cause_id || ' is ' || c.cause_status)
  from (
    select distinct on (e.task_id) e.task_id as dependent_id, e.depends_on_id as cause_id, u.status as cause_status
    from task_dependencies e join tasks u on u.id = e.depends_on_id
    where e.depends_on_id = any($1::uuid[])
    order by e.task_id, e.depends_on_id
  ) c
  where t.id = c.dependent_id and t.status = 'queued' and t.on_dependency_failure = 'fail'
  returning t.*
  ), ${owedNotificationsCte('failed')}
  select ${TASK_RETURNING} from failed`

// One decrement per dependent for all the edges that just finished: completed ones always,
// failed or cancelled ones for dependents under "run". A dependent reaching 0 is ready, due
// no earlier than now (its runAt may have passed long ago while it waited). The decrement is
// written against the row as updated (not a value read before): two dependencies finishing
// at once queue on the dependent's row lock, and the second subtracts from the first's result.
const LEFT = `t.blocked_count - c.ok - case when t.on_dependency_failure = 'run' then c.bad else 0 end`
const COUNT_DOWN = `
  with counts as (
    select e.task_id as dependent_id,
           count(*) filter (where e.depends_on_id = any($2::uuid[]))::int as ok,
           count(*) filter (where not (e.depends_on_id = any($2::uuid[])))::int as bad
    from task_dependencies e
    where e.depends_on_id = any($1::uuid[])
    group by e.task_id
  )
  update tasks t set blocked_count = greatest(0, ${LEFT}), updated_at = now(),
         run_at = case when ${LEFT} <= 0 then greatest(t.run_at, now()) else t.run_at end
  from counts c
  where t.id = c.dependent_id and t.status = 'queued' and t.blocked_count > 0
  returning ${TASK_RETURNING}`

// A retried task is unfinished again: its waiting dependents count it again, and those the
// cascade failed come back to waiting unless another dependency still dooms them. Either way
// they stop being held: a task waiting for a dependency is in no dispatch window, and takes
// its slot when the last one completes.
const RECOUNT_WAITING = `
  update tasks t set blocked_count = ${PENDING}, held = false, updated_at = now()
  where t.id in (select task_id from task_dependencies where depends_on_id = any($1::uuid[])) and t.status = 'queued'`
const REVIVE_FAILED = `
  update tasks t set status = 'queued', finished_at = null, blocked_count = ${PENDING}, held = false, updated_at = now()
  where t.id in (select task_id from task_dependencies where depends_on_id = any($1::uuid[]))
    and t.status = 'failed' and t.error->>'code' = '${DEPENDENCY_FAILED}' and not ${DOOMED}
  returning ${TASK_RETURNING}`
const RECOUNT_ONE = `
  update tasks t set blocked_count = ${PENDING} where t.id = $1
  returning t.blocked_count as "blockedCount", ${DOOMED} as doomed`

type Tx = postgres.TransactionSql | postgres.Sql

async function rows (tx: Tx, text: string, params: unknown[]): Promise<TaskRow[]> {
  return (await tx.unsafe(text, params as never[])).map((raw) => toTaskRow(raw))
}

/** Dependents under "fail" of these failed or cancelled tasks end failed; returns them. */
export async function cascadeFailure (tx: Tx, failedIds: readonly string[]): Promise<TaskRow[]> {
  if (failedIds.length === 0) return []
  return rows(tx, FAIL_DEPENDENTS, [failedIds])
}

/** The direct dependents of these finished tasks count them off; returns every dependent touched. */
export async function unblockDependents (tx: Tx, finished: readonly FinishedTask[]): Promise<TaskRow[]> {
  if (finished.length === 0) return []
  const completed = finished.filter((f) => f.status === 'completed').map((f) => f.id)
  return rows(tx, COUNT_DOWN, [finished.map((f) => f.id), completed])
}

/**
 * Everything the end of these tasks does down the graph: the failure cascade (level by level,
 * each level's failed tasks being the next level's finished ones) and the unblocking.
 * Only tasks that have dependents (`has_dependents`) need passing in.
 */
export async function settleDependents (tx: Tx, finished: readonly FinishedTask[]): Promise<DependentsOutcome> {
  const outcome: DependentsOutcome = { ready: [], waiting: [], failed: [] }
  let level = [...finished]
  while (level.length > 0) {
    const failed = await cascadeFailure(tx, level.filter((f) => f.status !== 'completed').map((f) => f.id))
    for (const row of await unblockDependents(tx, level)) {
      if (row.blockedCount === 0) outcome.ready.push(row)
      else outcome.waiting.push({ id: row.id, blockedCount: row.blockedCount })
    }
    outcome.failed.push(...failed)
    level = failed.filter((row) => row.hasDependents).map((row) => ({ id: row.id, status: 'failed' as const }))
  }
  return outcome
}

/**
 * After a failed or cancelled task went back to queued: its waiting dependents wait for it
 * again, and dependents the cascade failed wait again too (level by level). Returns the
 * tasks brought back.
 */
export async function reviveDependents (tx: Tx, retriedIds: readonly string[]): Promise<TaskRow[]> {
  const revived: TaskRow[] = []
  let level = [...retriedIds]
  while (level.length > 0) {
    await tx.unsafe(RECOUNT_WAITING, [level])
    const back = await rows(tx, REVIVE_FAILED, [level])
    revived.push(...back)
    level = back.filter((row) => row.hasDependents).map((row) => row.id)
  }
  return revived
}

/** A task queued again by a retry: how many dependencies it waits for, and whether one dooms it. */
export async function recountBlocked (tx: Tx, taskId: string): Promise<{ blockedCount: number, doomed: boolean }> {
  const [row] = await tx.unsafe<{ blockedCount: number, doomed: boolean }[]>(RECOUNT_ONE, [taskId])
  return row ?? { blockedCount: 0, doomed: false }
}
