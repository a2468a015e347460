import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { ProblemSchema } from './schemas/problem-schema.ts'
import { CreateTaskSchema, TaskSchema } from './schemas/task-schemas.ts'
import { QueueSchema } from './schemas/queue-schemas.ts'
import { ScheduleSchema } from './schemas/schedule-schemas.ts'
import { TaskTypeSchema } from './schemas/task-type-schemas.ts'
import { LeaseSchema } from './schemas/lease-schemas.ts'
import type { AppDeps } from './app-deps.ts'
import appServices from './plugins/app-services.ts'
import authentication, { adminOnlyRoutes } from './plugins/authentication.ts'
import clientFailureLimit from './plugins/client-failure-limit.ts'
import httpMetrics from './plugins/http-metrics.ts'
import jsonBody from './plugins/json-body.ts'
import requestLogContext from './plugins/request-log-context.ts'
import loadShedding from './plugins/load-shedding.ts'
import openapi from './plugins/openapi.ts'
import problemDetails from './plugins/problem-details.ts'
import requestGuard from './plugins/request-guard.ts'
import securityHeaders from './plugins/security-headers.ts'
import taskRateLimit from './plugins/task-rate-limit.ts'
import pullRuntime from './plugins/pull-runtime.ts'
import healthRoutes from './routes/health/index.ts'
import taskTypeRoutes from './routes/task-types/index.ts'
import taskRoutes from './routes/tasks/index.ts'
import leaseRoutes from './routes/leases/index.ts'
import callbackRoutes from './routes/callbacks/index.ts'
import taskEventRoutes from './routes/task-events/index.ts'
import queueRoutes from './routes/queues/index.ts'
import queueControlRoutes from './routes/queue-control/index.ts'
import queueDashboard from './routes/queue-dashboard/index.ts'
import statsRoutes from './routes/stats/index.ts'
import webhookEndpointRoutes from './routes/webhook-endpoints/index.ts'
import scheduleRoutes from './routes/schedules/index.ts'
import tenantLimitsRoutes from './routes/tenant-limits/index.ts'

/** The HTTP application as a plugin: infrastructure, services, error handling, then routes. */
export default fp(async function app (app: FastifyInstance, deps: AppDeps) {
  // Bodies are JSON only: anything else is a 415, not a string handed to a route.
  app.removeContentTypeParser('text/plain')
  app.addSchema(ProblemSchema)
  app.addSchema(TaskSchema)
  app.addSchema(CreateTaskSchema)
  app.addSchema(QueueSchema)
  app.addSchema(ScheduleSchema)
  app.addSchema(TaskTypeSchema)
  app.addSchema(LeaseSchema)

  // First, so its timing hooks see every request, the 404s and 405s included.
  await app.register(httpMetrics, { registry: deps.metrics.registry })
  await app.register(requestLogContext)
  await app.register(problemDetails)
  await app.register(jsonBody)
  // Before any route (the docs included), so its onRoute hook gives pages their own policy.
  await app.register(securityHeaders)
  await app.register(openapi)
  await app.register(appServices, deps)
  await app.register(pullRuntime)
  // Protection, in the order a request meets it: shed load, check the request, authenticate, then
  // rate-limit creation per tenant (a route hook, so after authentication).
  await app.register(loadShedding, deps)
  await app.register(requestGuard)
  await app.register(clientFailureLimit, deps)
  await app.register(authentication, deps)
  await app.register(taskRateLimit, deps)

  await app.register(healthRoutes)
  await app.register(taskTypeRoutes)
  await app.register(taskRoutes)
  await app.register(leaseRoutes)
  await app.register(callbackRoutes)
  await app.register(taskEventRoutes)
  await app.register(queueRoutes)
  await app.register(statsRoutes)
  await app.register(webhookEndpointRoutes)
  await app.register(scheduleRoutes)
  // Operators only: each in its own plugin, so the admin guard covers the whole of it.
  await app.register(async function adminRoutes (admin) {
    admin.addHook('onRoute', adminOnlyRoutes)
    await admin.register(queueControlRoutes)
    await admin.register(queueDashboard)
    await admin.register(tenantLimitsRoutes)
  })
}, { name: 'tasklane-app' })
