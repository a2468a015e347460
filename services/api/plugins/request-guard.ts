import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { sendProblem } from './problem-details.ts'

// %00 decodes to U+0000, which no Postgres text column can hold; no Tasklane URL needs it.
const NUL_IN_URL = /%00|\u0000/i

/** Refuses requests no route could handle correctly (a NUL in the URL, a compressed body) before any route sees them. */
export default fp(async function requestGuard (app: FastifyInstance) {
  app.addHook('onRequest', async (request, reply) => {
    if (NUL_IN_URL.test(request.url)) return sendProblem(reply, 400, { code: 'BAD_URL', detail: 'The URL contains a NUL character' })
    // Bodies are read as they come: a compressed body would otherwise be parsed as if it were not.
    const encoding = request.headers['content-encoding']
    if (encoding !== undefined && encoding.trim().toLowerCase() !== 'identity') {
      return sendProblem(reply, 415, { code: 'UNSUPPORTED_CONTENT_ENCODING', detail: 'Request bodies must not be compressed' })
    }
  })
}, { name: 'request-guard', dependencies: ['problem-details'] })
