import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { TaskEvent } from '../../../core/tasks/task-events.ts'
import { problems } from '../../schemas/problem-schema.ts'
import { TaskIdParams } from '../../schemas/task-schemas.ts'
import { createEventStream } from './event-stream.ts'

const DESCRIPTION = `Server-Sent Events. The first event is the task as it is now; then an \`event: status\`
(data: the task) for every status change and an \`event: progress\` (data: \`{ id, progress }\`) for every
progress report, as they happen on any worker. A task waiting for dependencies gets a status event
(still \`queued\`, with a shorter \`blockedBy\`) each time one of them finishes. A \`: heartbeat\` comment
keeps idle connections open.
The stream ends after the terminal status (\`completed\`, \`failed\` or \`cancelled\`); a task that is
already terminal gets that one event and the stream ends at once.`

/** GET /v1/tasks/{id}/events: any API replica can serve it, whichever worker runs the task. */
export default async function taskEventRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { tasks, taskEvents, config } = app.deps
  const open = new Set<() => void>()
  // An event stream never ends on its own while its task runs: close them before the server.
  app.addHook('preClose', async () => { for (const end of [...open]) end() })

  app.get('/v1/tasks/:id/events', {
    schema: {
      tags: ['tasks'], summary: 'Follow a task as Server-Sent Events', description: DESCRIPTION,
      params: TaskIdParams,
      response: {
        200: {
          description: 'An event stream',
          content: { 'text/event-stream': { schema: Type.String({ description: 'event: status | progress; data: JSON' }) } },
        },
        ...problems(401, 404, 503),
      },
    },
  }, async (request, reply) => {
    const { tenant } = request
    const id = request.params.id
    await tasks.get(tenant, id) // a 404 before anything is streamed
    const body = new PassThrough()
    const stream = createEventStream({
      write: (chunk) => { body.write(chunk) },
      end: () => { body.end() },
      read: () => tasks.get(tenant, id).catch((err: { statusCode?: number }) => {
        if (err.statusCode === 404) return undefined // deleted meanwhile
        throw err
      }),
      log: request.log,
    })
    const stop = () => { open.delete(stop); stream.close() }
    open.add(stop)
    let unsubscribe: (() => void) | undefined
    try {
      // Subscribe before reading, so no change can fall between the read and the first event.
      unsubscribe = await taskEvents.subscribe(id, (event: TaskEvent) => stream.apply(event))
    } catch (err) {
      stop()
      throw err
    }
    const heartbeat = setInterval(() => stream.heartbeat(), config.TASKLANE_SSE_HEARTBEAT_MS)
    stream.onClose(() => { unsubscribe?.(); clearInterval(heartbeat); open.delete(stop) })
    reply.raw.on('close', stop)
    body.on('close', stop)
    stream.start()

    reply.header('content-type', 'text/event-stream; charset=utf-8')
    reply.header('cache-control', 'no-cache, no-transform')
    reply.header('x-accel-buffering', 'no')
    return reply.code(200).send(body)
  })
}
