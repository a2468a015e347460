import { setTimeout as sleep } from 'node:timers/promises'
import type { TaskHandler } from '../task-handler.ts'

export const sleepHandler: TaskHandler<{ ms: number, progressSteps?: number }> = async (ctx) => {
  const started = Date.now()
  const steps = ctx.payload.progressSteps ?? 1
  for (let step = 1; step <= steps; step++) {
    await sleep(Math.round((ctx.payload.ms * step) / steps) - (Date.now() - started), undefined, { signal: ctx.signal })
    if (ctx.payload.progressSteps) await ctx.progress(Math.round((100 * step) / steps))
  }
  return { sleptMs: Date.now() - started }
}
