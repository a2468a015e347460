import { Type } from 'typebox'
import { PROBLEM_CODES, type ProblemCode } from '../problem-codes.ts'

const CODES = Object.keys(PROBLEM_CODES) as ProblemCode[]

/** RFC 9457 problem document, the body of every error response. */
export const ProblemSchema = Type.Object({
  type: Type.String({ description: '`urn:tasklane:problem:` and the code in lower case with dashes' }),
  title: Type.String(),
  status: Type.Integer(),
  detail: Type.Optional(Type.String()),
  instance: Type.Optional(Type.String()),
  code: Type.Unsafe<ProblemCode>({
    type: 'string',
    enum: CODES,
    description: `One code per problem type:\n${CODES.map((c) => `- \`${c}\`: ${PROBLEM_CODES[c]}`).join('\n')}`,
  }),
  requestId: Type.Optional(Type.String({ description: 'The X-Request-Id of the request, to quote when reporting it' })),
  errors: Type.Optional(Type.Array(Type.Object({
    path: Type.String({
      description: 'A JSON pointer: into the body (`/payload/url`, `/tasks/3/type`), or prefixed by the part ' +
        'of the request it points into (`/querystring/limit`, `/params/id`, `/headers/idempotency-key`)',
    }),
    message: Type.String(),
  }))),
  errorsOmitted: Type.Optional(Type.Integer({ minimum: 1, description: 'How many more field errors there were than `errors` lists' })),
}, {
  $id: 'Problem',
  title: 'Problem',
  description: 'RFC 9457 problem document',
  examples: [{
    type: 'urn:tasklane:problem:validation', title: 'Bad Request', status: 400, code: 'VALIDATION',
    detail: 'The request does not match the schema', requestId: '7f1c2b0e-3d5a-4c8e-9b61-2a4f0d9e8c11',
    errors: [{ path: '/querystring/limit', message: 'must be <= 500' }],
  }],
})

export const ProblemRef = Type.Ref('Problem')

const header = (description: string, type: 'string' | 'integer' = 'string') => ({ type, description })
const RETRY_AFTER = header('Seconds to wait before trying again', 'integer')

/** The response headers a problem status comes with. */
const HEADERS: Record<number, Record<string, ReturnType<typeof header>>> = {
  401: { 'WWW-Authenticate': header('The authentication scheme to use') },
  429: { 'Retry-After': RETRY_AFTER },
  503: { 'Retry-After': RETRY_AFTER },
}

/** Declares the problem responses a route can produce, for the OpenAPI document. */
export function problems (...statuses: number[]) {
  // Keyed by media type, so the OpenAPI document says application/problem+json and Fastify
  // picks this serializer for the problem documents the error handler sends.
  return Object.fromEntries(statuses.map((s) => [s, {
    description: STATUS_TEXT[s] ?? 'Error',
    ...(HEADERS[s] ? { headers: HEADERS[s] } : {}),
    content: { 'application/problem+json': { schema: ProblemRef } },
  }]))
}

/** The rate-limit headers of the routes that create tasks (counted per tenant). */
export const RATE_LIMIT_HEADERS = {
  'X-RateLimit-Limit': header('Tasks the tenant may create per window', 'integer'),
  'X-RateLimit-Remaining': header('Tasks left in this window', 'integer'),
  'X-RateLimit-Reset': header('Seconds until the window resets', 'integer'),
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
