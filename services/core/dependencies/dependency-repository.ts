import type postgres from 'postgres'
import type { TaskStatus } from '../tasks/task-view.ts'

// Reads of the dependency graph: what a task's view shows and what its executor receives.
// Both are loaded for a set of tasks in one statement, and only for tasks that have
// dependencies (dependency_count > 0), so a task without any costs nothing here.

export type DependencyView = { dependsOn: string[], blockedBy: string[] }
export type DependencyResult = { type: string, status: TaskStatus, result: unknown }
/** What an executor receives: each direct dependency by id. */
export type DependencyResults = Record<string, DependencyResult>

export const NO_DEPENDENCIES: DependencyView = Object.freeze({ dependsOn: [], blockedBy: [] }) as DependencyView

export function createDependencyRepository (sql: postgres.Sql) {
  return {
    /**
     * `dependsOn` (in id order, which is creation order) and `blockedBy` (those not finished
     * yet) of each task. Tasks without dependencies are absent from the map.
     */
    async views (taskIds: readonly string[]): Promise<Map<string, DependencyView>> {
      const views = new Map<string, DependencyView>()
      if (taskIds.length === 0) return views
      const rows = await sql.unsafe<{ taskId: string, dependsOnId: string, status: TaskStatus }[]>(`
        select e.task_id as "taskId", e.depends_on_id as "dependsOnId", d.status
        from task_dependencies e join tasks d on d.id = e.depends_on_id
        where e.task_id = any($1::uuid[])
        order by e.task_id, e.depends_on_id`, [taskIds as string[]])
      for (const row of rows) {
        let view = views.get(row.taskId)
        if (!view) views.set(row.taskId, (view = { dependsOn: [], blockedBy: [] }))
        view.dependsOn.push(row.dependsOnId)
        if (row.status === 'queued' || row.status === 'running') view.blockedBy.push(row.dependsOnId)
      }
      return views
    },

    /** The direct dependencies of each task with their type, status and result. */
    async results (taskIds: readonly string[]): Promise<Map<string, DependencyResults>> {
      const results = new Map<string, DependencyResults>()
      if (taskIds.length === 0) return results
      const rows = await sql.unsafe<{ taskId: string, id: string, type: string, status: TaskStatus, result: unknown }[]>(`
        select e.task_id as "taskId", d.id, d.type, d.status, d.result
        from task_dependencies e join tasks d on d.id = e.depends_on_id
        where e.task_id = any($1::uuid[])
        order by e.task_id, e.depends_on_id`, [taskIds as string[]])
      for (const row of rows) {
        let forTask = results.get(row.taskId)
        if (!forTask) results.set(row.taskId, (forTask = {}))
        forTask[row.id] = { type: row.type, status: row.status, result: row.result ?? null }
      }
      return results
    },
  }
}

export type DependencyRepository = ReturnType<typeof createDependencyRepository>
