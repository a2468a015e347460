import Fastify, { type FastifyInstance } from 'fastify'

export type CreateBody = { type: string, payload: Record<string, unknown> }

const body = {
  type: 'object',
  required: ['type', 'payload'],
  properties: { type: { type: 'string', minLength: 1, maxLength: 100 }, payload: { type: 'object' } },
} as const

/**
 * A peer's HTTP side as Fastify's guide writes it: no logger, the body checked by a schema,
 * 202 with the new id, and the /readyz the benchmark waits for.
 */
export function createPeerApp (create: (body: CreateBody) => Promise<string | null>): FastifyInstance {
  const app = Fastify({ logger: false })
  app.post<{ Body: CreateBody }>('/tasks', { schema: { body } }, async (req, reply) => {
    const id = await create(req.body)
    return reply.code(202).send({ id, status: 'queued' })
  })
  app.get('/readyz', async () => ({ ok: true }))
  return app
}
