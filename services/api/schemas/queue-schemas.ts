import { Type } from 'typebox'

export const JobCountsSchema = Type.Object({
  waiting: Type.Integer(),
  prioritized: Type.Integer(),
  delayed: Type.Integer(),
  active: Type.Integer(),
  completed: Type.Integer({ description: 'completed jobs Redis still keeps (a bounded tail; Postgres has every task)' }),
  failed: Type.Integer({ description: 'failed jobs Redis still keeps (a bounded tail)' }),
})

export const QueueSchema = Type.Object({
  name: Type.String(),
  paused: Type.Boolean(),
  concurrency: Type.Integer({ description: 'the global limit when one is set, else the default concurrency of each worker' }),
  workers: Type.Integer({ description: 'worker connections consuming the queue now' }),
  counts: JobCountsSchema,
}, { $id: 'Queue', title: 'Queue' })

export const QueueNameParams = Type.Object({ name: Type.String({ maxLength: 100 }) })

export const QueueRef = Type.Ref('Queue')
