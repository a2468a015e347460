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
      tags, operationId: 'createSchedule', summary: 'Create a schedule',
      description: 'A bad cron, time zone or template field, or a startAt after endAt, is a 400 naming the field; ' +
        'an unknown task type a 422; a name the tenant already uses a 409.',
      body: CreateScheduleSchema,
      response: { 201: { ...ScheduleRef, description: 'Created' }, ...problems(400, 401, 409, 413, 415, 422, 503) },
    },
  }, async (request, reply) => {
    const schedule = await schedules.create(request.tenant, request.body as ScheduleInput)
    reply.header('location', `/v1/schedules/${schedule.id}`)
    return reply.code(201).send(schedule)
  })

  app.get('/v1/schedules', {
    schema: {
      tags, operationId: 'listSchedules', summary: 'List schedules, newest first',
      description: 'Keyset-paginated: pass `nextCursor` back as `cursor` for the next page.',
      querystring: ListSchedulesQuery,
      response: { 200: SchedulePageSchema, ...problems(400, 401, 503) },
    },
  }, async (request) => schedules.list(request.tenant, request.query))

  app.get('/v1/schedules/:id', {
    schema: {
      tags, operationId: 'getSchedule', summary: 'Read one schedule, with its next run times',
      description: '`upcoming` lists the next 5 run times within startAt and endAt, computed as firing computes them.',
      params: ScheduleIdParams,
      response: { 200: ScheduleDetailSchema, ...problems(400, 401, 404, 503) },
    },
  }, async (request) => schedules.get(request.tenant, request.params.id))

  app.patch('/v1/schedules/:id', {
    schema: {
      tags, operationId: 'updateSchedule', summary: 'Change a schedule',
      description: 'Any field of the create body; the next run is worked out again from now.',
      params: ScheduleIdParams,
      body: UpdateScheduleSchema,
      response: { 200: ScheduleRef, ...problems(400, 401, 404, 409, 413, 415, 422, 503) },
    },
  }, async (request) => schedules.update(request.tenant, request.params.id, request.body as Partial<ScheduleInput>))

  app.delete('/v1/schedules/:id', {
    schema: {
      tags, operationId: 'deleteSchedule', summary: 'Delete a schedule (its tasks stay)',
      description: 'The tasks it made stay, with their scheduleId.',
      params: ScheduleIdParams,
      response: { 204: Type.Null({ description: 'Deleted' }), ...problems(400, 401, 404, 503) },
    },
  }, async (request, reply) => {
    await schedules.delete(request.tenant, request.params.id)
    return reply.code(204).send(null)
  })

  for (const action of ['pause', 'resume'] as const) {
    app.post(`/v1/schedules/:id/${action}`, {
      schema: {
        tags,
        operationId: `${action}Schedule`,
        summary: action === 'pause' ? 'Pause a schedule' : 'Resume a schedule',
        description: action === 'pause' ? 'It makes no task until resumed.' : 'It fires again from its next run after now; the paused time is not caught up.',
        params: ScheduleIdParams,
        response: { 200: ScheduleRef, ...problems(400, 401, 404, 503) },
      },
    }, async (request) => schedules.setPaused(request.tenant, request.params.id, action === 'pause'))
  }

  app.post('/v1/schedules/:id/trigger', {
    schema: {
      tags, operationId: 'triggerSchedule', summary: "Make the schedule's task now",
      description: 'Outside the cron, paused or not; the task carries the schedule id and the time of the trigger as scheduledFor.',
      params: ScheduleIdParams,
      response: { 202: { ...TaskRef, description: 'The task made' }, ...problems(400, 401, 404, 422, 503) },
    },
  }, async (request, reply) => {
    const task = await schedules.trigger(request.tenant, request.params.id)
    reply.header('location', `/v1/tasks/${task.id}`)
    return reply.code(202).send(task)
  })
}
