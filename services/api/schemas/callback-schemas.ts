import { Type } from 'typebox'
import { FailSchema } from './lease-schemas.ts'

export const CallbackParams = Type.Object({
  token: Type.String({ maxLength: 200, description: 'the token of `callback.url` in the webhook request' }),
})

export const CallbackCompleteSchema = Type.Object({
  result: Type.Optional(Type.Unknown({ description: 'checked against the type\'s resultSchema and TASKLANE_MAX_RESULT_BYTES' })),
}, { additionalProperties: false, $id: 'CallbackComplete', title: 'CallbackComplete' })

export const CallbackFailSchema = Type.Object(FailSchema.properties, { additionalProperties: false, $id: 'CallbackFail', title: 'CallbackFail' })

export const CallbackProgressSchema = Type.Object({
  progress: Type.Unknown({ description: '0..100, or an object' }),
}, { additionalProperties: false, required: ['progress'], $id: 'CallbackProgress', title: 'CallbackProgress' })

export const CallbackReplySchema = Type.Object({
  cancelRequested: Type.Boolean({ description: 'the task was cancelled: stop working on it; complete and fail now answer 409' }),
}, { $id: 'CallbackReply', title: 'CallbackReply' })
