import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from 'typebox'
import type { ScheduleInput } from '../../../core/schedules/schedule-service.ts'
import { problems } from '../../schemas/problem-schema.ts'
import {
  CreateScheduleSchema, ListSchedulesQuery, ScheduleDetailSchema, ScheduleIdParams, SchedulePageSchema, ScheduleRef, UpdateScheduleSchema,
} from '../../schemas/schedule-schemas.ts'
import { TaskRef } from '../../schemas/task-schemas.ts'

/** Recurring tasks of a tenant; another tenant's schedule is a 404 on every route. */
export default async function scheduleRoutes (fastify: FastifyInstance) {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const schedules = app.deps.schedules
  const tags = ['schedules']

  app.post('/v1/schedules', {
    schema: {
      tags, summary: 'Create a schedule',
      description: 'A bad cron, time zone or template field, or a startAt after endAt, is a 400 naming the field; ' +
        'an unknown task type a 422; a name the tenant already uses a 409.',
      body: CreateScheduleSchema,
      response: { 201: { ...ScheduleRef, description: 'Created' }, ...problems(400, 401, 409, 422) },
    },
  }, async (request, reply) => {
    const schedule = await schedules.create(request.tenant, request.body as ScheduleInput)
    reply.header('location', `/v1/schedules/${schedule.id}`)
    return reply.code(201).send(schedule)
  })

  app.get('/v1/schedules', {
    schema: {
      tags, summary: 'List schedules, newest first',
      querystring: ListSchedulesQuery,
      response: { 200: SchedulePageSchema, ...problems(400, 401) },
    },
  }, async (request) => schedules.list(request.tenant, request.query))

  app.get('/v1/schedules/:id', {
    schema: {
      tags, summary: 'Read one schedule, with its next run times',
      params: ScheduleIdParams,
      response: { 200: ScheduleDetailSchema, ...problems(401, 404) },
    },
  }, async (request) => schedules.get(request.tenant, request.params.id))

  app.patch('/v1/schedules/:id', {
    schema: {
      tags, summary: 'Change a schedule',
      description: 'Any field of the create body; the next run is worked out again from now.',
      params: ScheduleIdParams,
      body: UpdateScheduleSchema,
      response: { 200: ScheduleRef, ...problems(400, 401, 404, 409, 422) },
    },
  }, async (request) => schedules.update(request.tenant, request.params.id, request.body as Partial<ScheduleInput>))

  app.delete('/v1/schedules/:id', {
    schema: {
      tags, summary: 'Delete a schedule (its tasks stay)',
      params: ScheduleIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problems(401, 404) },
    },
  }, async (request, reply) => {
    await schedules.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/v1/schedules/:id/${action}`, {
      schema: {
        tags, summary: action === 'pause' ? 'Pause a schedule: it makes no task until resumed' : 'Resume a schedule from its next run after now',
        params: ScheduleIdParams,
        response: { 200: ScheduleRef, ...problems(401, 404) },
      },
    }, async (request) => schedules.setPaused(request.tenant, request.params.id, action === 'pause'))
  }

  app.post('/v1/schedules/:id/trigger', {
    schema: {
      tags, summary: "Make the schedule's task now",
      description: 'Outside the cron, paused or not; the task carries the schedule id and the time of the trigger as scheduledFor.',
      params: ScheduleIdParams,
      response: { 202: { ...TaskRef, description: 'The task made' }, ...problems(401, 404, 422) },
    },
  }, async (request, reply) => {
    const task = await schedules.trigger(request.tenant, request.params.id)
    reply.header('location', `/v1/tasks/${task.id}`)
    return reply.code(202).send(task)
  })
}
