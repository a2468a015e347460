import { Type } from 'typebox'

/** RFC 9457 problem document, the body of every error response. */
export const ProblemSchema = Type.Object({
  type: Type.String(),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  code: Type.Optional(Type.String()),
  requestId: Type.Optional(Type.String()),
  errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  errorsOmitted: Type.Optional(Type.Integer({ minimum: 1, description: 'How many more field errors there were than `errors` lists' })),
}, { $id: 'Problem', title: 'Problem', description: 'RFC 9457 problem document' })

export const ProblemRef = Type.Ref('Problem')

/** Declares the problem responses a route can produce, for the OpenAPI document. */
export function problems (...statuses: number[]) {
  // Keyed by media type, so the OpenAPI document says application/problem+json and Fastify
  // picks this serializer for the problem documents the error handler sends.
  return Object.fromEntries(statuses.map((s) => [s, {
    description: STATUS_TEXT[s] ?? 'Error',
    content: { 'application/problem+json': { schema: ProblemRef } },
  }]))
}

const STATUS_TEXT: Record<number, string> = {
  400: 'Malformed request or schema violation',
  401: 'Missing or invalid API key',
  404: 'Not found',
  409: 'State conflict',
  413: 'Body or payload too large',
  415: 'Unsupported content type',
  422: 'Unknown task type',
  429: 'Rate limited',
  503: 'Unavailable or overloaded',
}
