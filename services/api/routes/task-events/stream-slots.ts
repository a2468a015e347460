import createError from '@fastify/error'

const TooManyStreamsError = createError<[number]>('TASKLANE_TOO_MANY_STREAMS',
  'This tenant has %d event streams open, as many as it may; close one or try again later', 429)
const StreamsExhaustedError = createError('TASKLANE_OVERLOADED', 'This process serves as many event streams as it may; try again later', 503)

/** An open stream as the slots see it: what it holds in memory, and how to end it. */
export type StreamSlot = { tenant: string, bufferedBytes: () => number, end: () => void }

/**
 * The open event streams of one process, capped per tenant and in all. A stream holds a
 * connection, a subscription and up to its buffer for as long as its task runs, so a tenant
 * that opens them without end must be refused before the process runs out.
 */
export function createStreamSlots (limits: { perProcess: number, perTenant: number }) {
  const open = new Set<StreamSlot>()
  const byTenant = new Map<string, number>()

  return {
    /** Takes a slot or throws the 429 (tenant) or 503 (process) problem; `release` gives it back once. */
    acquire (slot: StreamSlot, refused: (limit: 'tenant' | 'process') => void): () => void {
      const mine = byTenant.get(slot.tenant) ?? 0
      if (mine >= limits.perTenant) {
        refused('tenant')
        throw new TooManyStreamsError(mine)
      }
      if (open.size >= limits.perProcess) {
        refused('process')
        throw new StreamsExhaustedError()
      }
      open.add(slot)
      byTenant.set(slot.tenant, mine + 1)
      return () => {
        if (!open.delete(slot)) return
        const left = (byTenant.get(slot.tenant) ?? 1) - 1
        if (left === 0) byTenant.delete(slot.tenant)
        else byTenant.set(slot.tenant, left)
      }
    },
    count: (): number => open.size,
    bufferedBytes: (): number => {
      let total = 0
      for (const slot of open) total += slot.bufferedBytes()
      return total
    },
    /** Ends every open stream (the server is closing). */
    endAll: (): void => { for (const slot of [...open]) slot.end() },
  }
}
