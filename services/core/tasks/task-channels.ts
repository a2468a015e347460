// Redis pub/sub channels, under the queue prefix so that two Tasklanes sharing one Redis
// (or two test files) never hear each other.

/** Status and progress events of one task: workers and API replicas publish, SSE streams listen. */
export const taskEventsChannel = (prefix: string, taskId: string): string => `${prefix}:task-events:${taskId}`

/** Cancel requests for running tasks: every worker listens and aborts the job if it holds it. */
export const cancelChannel = (prefix: string): string => `${prefix}:cancel`
