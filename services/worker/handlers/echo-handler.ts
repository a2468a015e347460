import type { TaskHandler } from '../task-handler.ts'

export const echoHandler: TaskHandler = async (ctx) => ctx.payload
