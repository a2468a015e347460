import { setTimeout as sleep } from 'node:timers/promises'
import type { TaskHandler } from '../task-handler.ts'

export const sleepHandler: TaskHandler<{ ms: number }> = async (ctx) => {
  const started = Date.now()
  await sleep(ctx.payload.ms, undefined, { signal: ctx.signal })
  return { sleptMs: Date.now() - started }
}
