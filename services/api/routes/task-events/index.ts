import { PassThrough } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import { isTerminal } from '../../../core/tasks/task-view.ts'
import type { TaskEvent } from '../../../core/tasks/task-events.ts'
import { problems } from '../../schemas/problem-schema.ts'
import { TaskIdParams } from '../../schemas/task-schemas.ts'
import { createEventStream, eventId, parseEventId } from './event-stream.ts'
import { createStreamSlots } from './stream-slots.ts'

const DESCRIPTION = `Server-Sent Events. The first event is the task as it is now; then an \`event: status\`
(data: the task without its \`payload\`) for every status change and an \`event: progress\` (data: \`{ id, progress }\`)
for every progress report, as they happen on any worker. A task waiting for dependencies gets a status event (still
\`queued\`, with a shorter \`blockedBy\`) each time one of them finishes. A \`: heartbeat\` comment keeps idle connections open, and
the task is re-read from Postgres at each heartbeat. The stream ends after the terminal status (\`completed\`, \`failed\`
or \`cancelled\`); a task that is already terminal gets that one event and the stream ends at once.

Each event's id is the task's \`updatedAt\` in epoch milliseconds. A client that reconnects with \`Last-Event-ID\` gets
the task as it is now if it changed after that id (intermediate statuses collapse into the current one; the attempts
route has the history), and nothing until the next change otherwise; 204 when the task had already ended then.

A client that does not read is cut off once its stream holds more than \`TASKLANE_SSE_MAX_BUFFER_BYTES\`, and resumes
as above. Open streams are capped per tenant (429) and per process (503), both with \`Retry-After\`.`

const RETRY_AFTER_SECONDS = 5

/** GET /v1/tasks/{id}/events: any API replica can serve it, whichever worker runs the task. */
export default async function taskEventRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { tasks, taskEvents, config, metrics } = app.deps
  const slots = createStreamSlots({ perProcess: config.TASKLANE_SSE_MAX_STREAMS, perTenant: config.TASKLANE_SSE_MAX_STREAMS_PER_TENANT })
  metrics.streams.observe(slots)
  // An event stream never ends on its own while its task runs: close them before the server.
  app.addHook('preClose', async () => slots.endAll())

  app.get('/v1/tasks/:id/events', {
    schema: {
      tags: ['tasks'], operationId: 'streamTaskEvents', summary: 'Follow a task as Server-Sent Events', description: DESCRIPTION,
      params: TaskIdParams,
      headers: Type.Object({
        'last-event-id': Type.Optional(Type.String({ maxLength: 64, description: 'The id of the last event received, to resume' })),
      }),
      response: {
        200: {
          description: 'An event stream',
          content: { 'text/event-stream': { schema: Type.String({ description: 'event: status | progress; data: JSON' }) } },
        },
        204: Type.Null({ description: 'Resumed after the terminal event: nothing more will come' }),
        ...problems(400, 401, 404, 429, 503),
      },
    },
  }, async (request, reply) => {
    const { tenant } = request
    const id = request.params.id
    const since = parseEventId(request.headers['last-event-id'])
    const body = new PassThrough()
    let reason: 'ended' | 'client' | 'slow' | 'shutdown' | 'error' = 'ended'
    let end = () => {}
    let stop = () => {}
    body.on('error', (err) => request.log.debug({ err }, 'event stream body failed'))
    const held = () => body.writableLength + body.readableLength + reply.raw.writableLength
    let release: () => void
    try {
      release = slots.acquire({ tenant, bufferedBytes: held, end: () => end() }, metrics.streams.refused)
    } catch (err) {
      reply.header('retry-after', String(RETRY_AFTER_SECONDS))
      throw err
    }
    let unsubscribe: (() => void) | undefined
    let heartbeat: NodeJS.Timeout | undefined
    try {
      const task = await tasks.get(tenant, id) // a 404 before anything is streamed
      if (since !== undefined && isTerminal(task.status) && eventId(task.updatedAt) <= since) {
        release()
        return reply.code(204).send(null)
      }
      const stream = createEventStream({
        // A client that does not read leaves frames in this stream; past the cap the stream is cut,
        // and the client resumes with Last-Event-ID instead of the process holding ever more.
        write: (chunk) => {
          if (body.destroyed) return
          body.write(chunk)
          const bytes = held()
          if (bytes <= config.TASKLANE_SSE_MAX_BUFFER_BYTES) return
          reason = 'slow'
          request.log.warn({ taskId: id, bufferedBytes: bytes }, 'event stream cut: the client does not read')
          stop()
          body.destroy()
          reply.raw.destroy()
        },
        end: () => { if (!body.destroyed) body.end() },
        read: () => tasks.get(tenant, id).catch((err: { statusCode?: number }) => {
          if (err.statusCode === 404) return undefined // deleted meanwhile
          throw err
        }),
        log: request.log,
        since,
      })
      let closed = false
      stop = () => {
        if (closed) return
        closed = true
        stream.close()
        unsubscribe?.()
        clearInterval(heartbeat)
        release()
        metrics.streams.closed(reason)
      }
      end = () => { reason = 'shutdown'; stop() }
      stream.onClose(stop)
      reply.raw.on('close', () => { if (reason === 'ended' && !body.writableEnded) reason = 'client'; stop() })
      body.on('close', stop)
      // Subscribe before reading, so no change can fall between the read and the first event.
      unsubscribe = await taskEvents.subscribe(id, (event: TaskEvent) => stream.apply(event))
      if (closed) unsubscribe()
      heartbeat = setInterval(() => stream.heartbeat(), config.TASKLANE_SSE_HEARTBEAT_MS)
      stream.start()
    } catch (err) {
      release()
      throw err
    }
    reply.header('content-type', 'text/event-stream; charset=utf-8')
    reply.header('cache-control', 'no-cache, no-transform')
    reply.header('x-accel-buffering', 'no')
    return reply.code(200).send(body)
  })
}
