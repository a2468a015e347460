import type { Registry } from 'prom-client'
import type { Config } from '../config.ts'
import type { Db } from '../db/db-client.ts'
import type { Logger } from '../log.ts'
import type { TaskService } from '../tasks/task-service.ts'
import { createScheduleFirer } from './schedule-firer.ts'
import { createScheduleLoop } from './schedule-loop.ts'
import { createScheduleService } from './schedule-service.ts'

/** The schedule service and the firing loop of one process, wired to each other (not started). */
export function openScheduling (deps: {
  db: Db
  tasks: Pick<TaskService, 'build' | 'dispatchStored'>
  config: Pick<Config, 'TASKLANE_SCHEDULER_MAX_SLEEP_MS' | 'TASKLANE_SCHEDULE_MISFIRE_GRACE_MS'>
  registry: Registry
  log: Logger
}) {
  const fire = createScheduleFirer({ db: deps.db, tasks: deps.tasks, graceMs: deps.config.TASKLANE_SCHEDULE_MISFIRE_GRACE_MS, log: deps.log })
  const scheduleLoop = createScheduleLoop({ db: deps.db, fire, config: deps.config, registry: deps.registry, log: deps.log })
  const schedules = createScheduleService({ db: deps.db, tasks: deps.tasks, changed: () => scheduleLoop.wake() })
  return { schedules, scheduleLoop }
}
