import { createBullBoard } from '@bull-board/api'
import type { IServerAdapter } from '@bull-board/api/typings/app'
import { BullMQAdapter } from '@bull-board/api/bullMQAdapter'
import { FastifyAdapter } from '@bull-board/fastify'
import type { FastifyInstance } from 'fastify'

export const DASHBOARD_PATH = '/admin/queues'

/**
 * The BullMQ dashboard (bull-board) for operators, showing every Tasklane queue. Read-only:
 * Postgres holds the truth about tasks, so retrying or removing jobs behind its back would
 * make the two disagree; clients retry and cancel through the API, operators pause through it.
 */
export default async function queueDashboard (app: FastifyInstance) {
  const { queues } = app.deps
  const serverAdapter = new FastifyAdapter()
  serverAdapter.setBasePath(DASHBOARD_PATH)
  createBullBoard({
    queues: queues.names().map((name) => new BullMQAdapter(queues.get(name), { readOnlyMode: true })),
    // @bull-board/fastify pins a patch-older @bull-board/api for its types only; the shapes agree.
    serverAdapter: serverAdapter as unknown as IServerAdapter,
    options: { uiConfig: { boardTitle: 'Tasklane' } },
  })
  await app.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH })
}
