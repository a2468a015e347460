import type { Config } from '../../core/config.ts'
import { createConfiguredOutboundClient, type OutboundClient } from '../../core/outbound/outbound-client.ts'
import type { TaskHandler } from '../task-handler.ts'
import { echoHandler } from './echo-handler.ts'
import { createHttpHandler } from './http-handler.ts'
import { sleepHandler } from './sleep-handler.ts'

/**
 * The handler of every built-in task type, by type name. Add a type's handler here. Without
 * an outbound client of the process's, one is made (and closed by `close`).
 */
export function createHandlers (config: Pick<Config, 'TASKLANE_HTTP_ALLOW_PRIVATE' | 'allowedHosts'>, shared?: OutboundClient) {
  const outbound = shared ?? createConfiguredOutboundClient(config)
  const handlers = new Map<string, TaskHandler<never>>([
    ['echo', echoHandler],
    ['sleep', sleepHandler],
    ['http', createHttpHandler(outbound)],
  ])
  return { handlers: handlers as Map<string, TaskHandler<unknown>>, close: () => (shared ? Promise.resolve() : outbound.close()) }
}
