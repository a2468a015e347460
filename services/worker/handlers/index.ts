import type { Config } from '../../core/config.ts'
import type { TaskHandler } from '../task-handler.ts'
import { echoHandler } from './echo-handler.ts'
import { createHttpHandler } from './http-handler.ts'
import { sleepHandler } from './sleep-handler.ts'

/** The handler of every built-in task type, by type name. Add a type's handler here. */
export function createHandlers (config: Pick<Config, 'TASKLANE_HTTP_ALLOW_PRIVATE'>) {
  const http = createHttpHandler({ allowPrivate: config.TASKLANE_HTTP_ALLOW_PRIVATE })
  const handlers = new Map<string, TaskHandler<never>>([
    ['echo', echoHandler],
    ['sleep', sleepHandler],
    ['http', http],
  ])
  return { handlers: handlers as Map<string, TaskHandler<unknown>>, close: () => http.close() }
}
