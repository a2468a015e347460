import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ValidationError } from '../../../core/errors.ts'
import { problems } from '../../schemas/problem-schema.ts'
import { TenantLimitsBody, TenantLimitsView, TenantParams } from '../../schemas/tenant-limits-schemas.ts'

/**
 * A tenant's limits (concurrency per queue, creations per minute, retention) and its usage.
 * Operators only: its own plugin, so the admin guard covers all of it.
 */
export default async function tenantLimitsRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const { tenantLimits, queues } = app.deps

  async function view (tenant: string) {
    const [limits, usage] = await Promise.all([tenantLimits.inForce(tenant, queues.names()), tenantLimits.running(tenant)])
    return { tenant, ...limits, usage: { ...Object.fromEntries(queues.names().map((q) => [q, 0])), ...usage } }
  }

  app.get('/v1/admin/tenants/:tenant/limits', {
    schema: {
      tags: ['tenants'], operationId: 'getTenantLimits', summary: 'A tenant\'s limits in force and its running tasks per queue',
      description: 'The defaults count for what the tenant has not set. Needs the admin key (`TASKLANE_ADMIN_KEY`), not a tenant key.',
      security: [{ adminKey: [] }],
      params: TenantParams,
      response: { 200: TenantLimitsView, ...problems(400, 401, 503) },
    },
  }, async (request) => view(request.params.tenant))

  app.put('/v1/admin/tenants/:tenant/limits', {
    schema: {
      tags: ['tenants'], operationId: 'putTenantLimits', summary: 'Replace a tenant\'s limits',
      description: 'A field left out or null goes back to the default. Every process applies a change within seconds. Needs the admin key (`TASKLANE_ADMIN_KEY`), not a tenant key.',
      security: [{ adminKey: [] }],
      params: TenantParams,
      body: TenantLimitsBody,
      response: { 200: TenantLimitsView, ...problems(400, 401, 415, 503) },
    },
  }, async (request) => {
    const { concurrency, createPerMinute, retentionDays } = request.body
    const unknown = Object.keys(concurrency ?? {}).filter((queue) => !queues.has(queue))
    if (unknown.length > 0) {
      throw new ValidationError(unknown.map((queue) => ({ path: `/concurrency/${queue}`, message: 'is not a queue of this deployment' })))
    }
    await tenantLimits.replace(request.params.tenant, {
      concurrency: concurrency ?? null, createPerMinute: createPerMinute ?? null, retentionDays: retentionDays ?? null,
    })
    return view(request.params.tenant)
  })
}
