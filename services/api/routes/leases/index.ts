import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { problems } from '../../schemas/problem-schema.ts'
import {
  CompleteSchema, FailSchema, HeartbeatReplySchema, HeartbeatSchema, LeaseIdParams, LeaseListSchema, LeaseRequestSchema,
} from '../../schemas/lease-schemas.ts'
import { TaskRef } from '../../schemas/task-schemas.ts'

const LEASE_LOST = 'A lease that expired, ended, or is not known (another tenant\'s included) is a 409 whose problem type ends `lease-lost`.'

/** Pull workers: any process with a key of the tenant takes its pull types' tasks over HTTP. */
export default async function leaseRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const leases = app.deps.leases

  app.post('/v1/leases', {
    schema: {
      tags: ['pull workers'], operationId: 'createLeases', summary: 'Lease ready tasks of the tenant\'s pull types (long poll)',
      description: 'Up to `max` tasks, in priority order then `runAt`; waits up to `waitMs` for the first. Each leased task is ' +
        '`running` on a new attempt. A name that is not one of the tenant\'s pull types is a 400.',
      body: LeaseRequestSchema,
      response: { 200: LeaseListSchema, ...problems(400, 401, 415, 503) },
    },
  }, async (request) => ({ items: await leases.lease(request.tenant, request.body) }))

  app.post('/v1/leases/:leaseId/heartbeat', {
    schema: {
      tags: ['pull workers'], operationId: 'heartbeatLease', summary: 'Extend a lease, report progress, hear of a cancel',
      description: 'The lease then expires `extendMs` (default: its visibilityMs) from now, never past the deadline. ' + LEASE_LOST,
      params: LeaseIdParams,
      body: HeartbeatSchema,
      response: { 200: HeartbeatReplySchema, ...problems(400, 401, 409, 415, 503) },
    },
  }, async (request) => leases.heartbeat(request.tenant, request.params.leaseId, request.body ?? {}))

  app.post('/v1/leases/:leaseId/complete', {
    schema: {
      tags: ['pull workers'], operationId: 'completeLease', summary: 'Complete the leased task with its result',
      description: 'A result that does not match the type\'s resultSchema answers 200 with the task `failed`, code ' +
        '`RESULT_INVALID` (not retried). ' + LEASE_LOST,
      params: LeaseIdParams,
      body: CompleteSchema,
      response: { 200: TaskRef, ...problems(400, 401, 409, 415, 503) },
    },
  }, async (request) => leases.complete(request.tenant, request.params.leaseId, request.body.result))

  app.post('/v1/leases/:leaseId/fail', {
    schema: {
      tags: ['pull workers'], operationId: 'failLease', summary: 'Fail the leased attempt',
      description: 'Retryable (the default) with attempts left: the task is queued again after its backoff, or ' +
        '`retryAfterMs` when longer. Otherwise it fails. ' + LEASE_LOST,
      params: LeaseIdParams,
      body: FailSchema,
      response: { 200: TaskRef, ...problems(400, 401, 409, 415, 503) },
    },
  }, async (request) => leases.fail(request.tenant, request.params.leaseId, request.body))
}
