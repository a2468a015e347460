import type { FastifyBaseLogger } from 'fastify'
import type { TaskEvent } from '../../../core/tasks/task-events.ts'
import { isTerminal, type TaskView } from '../../../core/tasks/task-view.ts'

/** An event id: the task's `updatedAt` in epoch milliseconds, so a resumed stream knows what the client has. */
export const eventId = (updatedAt: string): number => Date.parse(updatedAt)

/** A `Last-Event-ID` this API sent, or undefined. */
export function parseEventId (header: string | string[] | undefined): number | undefined {
  return typeof header === 'string' && /^[0-9]{1,15}$/.test(header) ? Number(header) : undefined
}

/** A status frame carries the task without its payload: the client has it, and it can be large. */
function statusFrame (view: TaskView): Omit<TaskView, 'payload'> {
  const { payload: _payload, ...rest } = view
  return rest
}

/**
 * The state of one task's event stream: turns Redis events into SSE frames, in order,
 * without repeating a status, and ends after the terminal one. Postgres decides the final
 * event: a terminal notification (and every heartbeat) re-reads the task. Given `since` (a
 * resumed stream), the first frame is sent only when the task changed after that id.
 */
export function createEventStream (deps: {
  write: (chunk: string) => void
  end: () => void
  /** The task from Postgres; undefined once it is gone. */
  read: () => Promise<TaskView | undefined>
  log: FastifyBaseLogger
  since?: number | undefined
}) {
  let last: TaskView | undefined
  let closed = false
  const onClose: (() => void)[] = []
  // Everything runs through one chain, so frames leave in the order events arrived; the chain
  // starts closed and opens once the first read has been sent.
  let openGate!: () => void
  let chain: Promise<void> = new Promise<void>((resolve) => { openGate = resolve })

  function frame (event: string, updatedAt: string, data: unknown): void {
    deps.write(`id: ${eventId(updatedAt)}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`)
  }

  function close (): void {
    if (closed) return
    closed = true
    for (const fn of onClose) fn()
    deps.end()
  }

  function status (view: TaskView | undefined): void {
    if (closed) return
    if (!view) return close()
    const changed = last
      ? view.status !== last.status || view.attempts !== last.attempts || view.blockedBy.length !== last.blockedBy.length
      : deps.since === undefined || eventId(view.updatedAt) > deps.since
    last = view
    if (changed) frame('status', view.updatedAt, statusFrame(view))
    if (isTerminal(view.status)) close()
  }

  function enqueue (step: () => Promise<void> | void): void {
    chain = chain.then(async () => { if (!closed) await step() }).catch((err: unknown) => {
      deps.log.warn({ err }, 'task event stream failed')
      close()
    })
  }

  return {
    /** Sends the task as it is now, then the events that arrived meanwhile. */
    start (): void {
      deps.write('retry: 2000\n\n')
      deps.read().then((view) => { status(view); openGate() }, (err: unknown) => {
        deps.log.warn({ err }, 'reading the task for its event stream failed')
        close()
      })
    },
    apply (event: TaskEvent): void {
      enqueue(async () => {
        if (event.kind === 'progress') {
          if (last) last = { ...last, progress: event.progress as TaskView['progress'], updatedAt: event.updatedAt }
          frame('progress', event.updatedAt, { id: last?.id, progress: event.progress })
          return
        }
        // The terminal event is Postgres' final word (result included), not the notification.
        // So is the list a dependency's end shortened (the event carries only its length).
        if (isTerminal(event.status) || !last || event.blockedCount !== undefined) return status(await deps.read())
        const { kind: _kind, ...fields } = event
        status({ ...last, ...fields } as TaskView)
      })
    },
    /** Keeps the connection open and catches a terminal change whose event was lost. */
    heartbeat (): void {
      if (closed) return
      deps.write(': heartbeat\n\n')
      enqueue(async () => status(await deps.read()))
    },
    onClose: (fn: () => void): void => { onClose.push(fn) },
    close,
  }
}
