import type { Db } from '../db/db-client.ts'
import type { NewScheduleRow, ScheduleCatchUp, ScheduleOverlap, ScheduleRow } from '../db/schema.ts'
import { ScheduleNameTakenError, ScheduleNotFoundError, ValidationError, type FieldError } from '../errors.ts'
import { decodeIdCursor, encodeIdCursor } from '../id-cursor.ts'
import { isUuid, newTaskId } from '../ids.ts'
import { isUniqueViolation } from '../tasks/task-insert-statement.ts'
import type { CreateTaskInput, TaskService } from '../tasks/task-service.ts'
import { toTaskView, type TaskView } from '../tasks/task-view.ts'
import { CronSpecError, parseCron } from './cron-schedule.ts'
import { nextRunAfter, upcomingRuns } from './schedule-plan.ts'
import { createScheduleRepository } from './schedule-repository.ts'
import { toScheduleView, type ScheduleView } from './schedule-view.ts'

export type TaskTemplate = Pick<CreateTaskInput, 'type' | 'payload' | 'priority' | 'maxAttempts' | 'timeoutMs' | 'backoff' | 'tags'>

export type ScheduleInput = {
  name: string
  cron: string
  timezone?: string
  task: TaskTemplate
  overlap?: ScheduleOverlap
  catchUp?: ScheduleCatchUp
  paused?: boolean
  startAt?: string | null
  endAt?: string | null
}

export type SchedulePatch = Partial<ScheduleInput>

export type ScheduleServiceDeps = {
  db: Db
  tasks: Pick<TaskService, 'build' | 'dispatchStored'>
  /** Told when a schedule's next due time may have moved, so this process's loop looks again. */
  changed?: () => void
}

const toDate = (value: string | null | undefined): Date | null => (value ? new Date(value) : null)

/** Schedules of a tenant: validated against their task type, stored with their next due time. */
export function createScheduleService (deps: ScheduleServiceDeps) {
  const repo = createScheduleRepository(deps.db)

  /** Checks a whole schedule (as it would be stored) and returns its next due time from now. */
  function validate (tenant: string, s: Required<Omit<ScheduleInput, 'startAt' | 'endAt'>> & { startAt: Date | null, endAt: Date | null }): Date | null {
    const errors: FieldError[] = []
    let cron
    try {
      cron = parseCron(s)
    } catch (err) {
      if (!(err instanceof CronSpecError)) throw err
      errors.push({ path: `/${err.field}`, message: err.message })
    }
    if (s.startAt && s.endAt && s.startAt > s.endAt) errors.push({ path: '/startAt', message: 'must not be after endAt' })
    try {
      deps.tasks.build(tenant, s.task)
    } catch (err) {
      // An unknown type stays a 422, an oversized payload a 413; field errors join the others.
      if (!(err instanceof ValidationError)) throw err
      errors.push(...err.errors.map((e) => ({ path: `/task${e.path}`, message: e.message })))
    }
    if (errors.length > 0 || !cron) throw new ValidationError(errors)
    const next = nextRunAfter(cron, new Date(), s)
    if (!next && !s.endAt) throw new ValidationError([{ path: '/cron', message: 'never matches a date' }])
    return s.paused ? null : next
  }

  async function find (tenant: string, id: string): Promise<ScheduleRow> {
    const row = isUuid(id) ? await repo.findById(tenant, id) : undefined
    if (!row) throw new ScheduleNotFoundError(id)
    return row
  }

  async function saved<T> (name: string | undefined, write: () => Promise<T>): Promise<T> {
    try {
      const result = await write()
      deps.changed?.()
      return result
    } catch (err) {
      // Drizzle wraps the driver's error; the name's unique index is the only one a write can hit.
      if (isUniqueViolation(err) || isUniqueViolation((err as { cause?: unknown }).cause)) throw new ScheduleNameTakenError(name ?? '')
      throw err
    }
  }

  const fields = (row: ScheduleRow) => ({
    name: row.name, cron: row.cron, timezone: row.timezone, task: row.task as TaskTemplate, overlap: row.overlap,
    catchUp: row.catchUp, paused: row.paused, startAt: row.startAt, endAt: row.endAt,
  })

  return {
    async create (tenant: string, input: ScheduleInput): Promise<ScheduleView> {
      const s = {
        name: input.name, cron: input.cron, timezone: input.timezone ?? 'UTC', task: input.task,
        overlap: input.overlap ?? 'skip', catchUp: input.catchUp ?? 'latest', paused: input.paused ?? false,
        startAt: toDate(input.startAt), endAt: toDate(input.endAt),
      } satisfies Omit<NewScheduleRow, 'id' | 'tenant'>
      const nextRunAt = validate(tenant, s)
      const row = await saved(s.name, () => repo.insert({ id: newTaskId(), tenant, ...s, nextRunAt }))
      return toScheduleView(row)
    },

    async list (tenant: string, page: { limit: number, cursor?: string | undefined }) {
      const beforeId = page.cursor === undefined ? undefined : decodeIdCursor(page.cursor)
      const rows = await repo.list(tenant, beforeId, page.limit + 1)
      const items = rows.slice(0, page.limit)
      return {
        items: items.map(toScheduleView),
        nextCursor: rows.length > page.limit && items.length > 0 ? encodeIdCursor(items.at(-1)!.id) : null,
      }
    },

    /** One schedule with `upcoming`: its next 5 run times from now, within startAt and endAt. */
    async get (tenant: string, id: string): Promise<ScheduleView & { upcoming: string[] }> {
      const row = await find(tenant, id)
      const upcoming = upcomingRuns(row, new Date(Date.now() + 1), row).map((d) => d.toISOString())
      return { ...toScheduleView(row), upcoming }
    },

    /** Changes fields; the next due time is worked out again from now. */
    async update (tenant: string, id: string, patch: SchedulePatch): Promise<ScheduleView> {
      const current = fields(await find(tenant, id))
      const s = {
        ...current,
        ...Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined)),
        startAt: patch.startAt === undefined ? current.startAt : toDate(patch.startAt),
        endAt: patch.endAt === undefined ? current.endAt : toDate(patch.endAt),
      } as typeof current
      const nextRunAt = validate(tenant, s)
      const row = await saved(s.name, () => repo.update(tenant, id, { ...s, nextRunAt }))
      if (!row) throw new ScheduleNotFoundError(id)
      return toScheduleView(row)
    },

    async delete (tenant: string, id: string): Promise<void> {
      if (!isUuid(id) || !await repo.delete(tenant, id)) throw new ScheduleNotFoundError(id)
      deps.changed?.()
    },

    /** Paused: no task is made and no due time is kept. Resumed: the next due time from now (no catch-up of the pause). */
    async setPaused (tenant: string, id: string, paused: boolean): Promise<ScheduleView> {
      const row = await find(tenant, id)
      if (row.paused === paused) return toScheduleView(row)
      const nextRunAt = paused ? null : nextRunAfter(parseCron(row), new Date(), row)
      const updated = await saved(row.name, () => repo.update(tenant, id, { paused, nextRunAt }))
      if (!updated) throw new ScheduleNotFoundError(id)
      return toScheduleView(updated)
    },

    /** Makes the schedule's task now, outside its cron (paused or not, whatever is running). */
    async trigger (tenant: string, id: string): Promise<TaskView> {
      const schedule = await find(tenant, id)
      const row = deps.tasks.build(tenant, schedule.task as TaskTemplate, { scheduleId: schedule.id, scheduledFor: new Date() })
      const stored = await repo.transaction(async (tx) => {
        // Locked, so a firing pass and this trigger agree on which task is the last one.
        if (!await repo.lockForTrigger(tx, tenant, id)) throw new ScheduleNotFoundError(id)
        const task = await repo.insertTask(tx, row)
        if (!task) throw new Error('the triggered task was not stored')
        await repo.setLastTask(tx, id, task.id)
        return task
      })
      await deps.tasks.dispatchStored([stored])
      return toTaskView(stored)
    },
  }
}

export type ScheduleService = ReturnType<typeof createScheduleService>
