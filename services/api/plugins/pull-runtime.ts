import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'

// How often each API replica looks for expired leases. The sweep is a conditional update per
// lease, so replicas sweeping together end each lease once.
const LEASE_SWEEP_MS = 1_000

/**
 * The API's background parts of registered types and pull workers: the task type catalog
 * (loaded, then kept current by LISTEN/NOTIFY) and the lease expiry sweeper.
 */
export default fp(async function pullRuntime (app: FastifyInstance) {
  const { taskTypeCatalog, leases } = app.deps
  await taskTypeCatalog.start()
  leases.start(LEASE_SWEEP_MS)
  app.addHook('onClose', async () => {
    await leases.stop()
    await taskTypeCatalog.close()
  })
}, { name: 'pull-runtime', dependencies: ['app-services'] })
