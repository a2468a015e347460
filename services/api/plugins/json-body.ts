import type { FastifyInstance } from 'fastify'
import fp from 'fastify-plugin'
import { JsonTooDeepError, UnsupportedCharsetError } from '../../core/errors.ts'
import { MAX_JSON_DEPTH, jsonTextTooDeep } from '../../core/json-depth.ts'

const CHARSET = /;\s*charset\s*=\s*"?([^";\s]*)/i

/**
 * The one way a JSON body enters the API. Before Fastify's own parser (which keeps its
 * prototype-poisoning checks) it refuses what would be read wrong or would overflow the stack
 * later: a charset other than UTF-8 (the bytes would be decoded as UTF-8 and stored corrupted)
 * and nesting deeper than MAX_JSON_DEPTH.
 */
export default fp(async function jsonBody (app: FastifyInstance) {
  const parse = app.getDefaultJsonParser('error', 'error')
  app.removeContentTypeParser('application/json')
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    const charset = CHARSET.exec(request.headers['content-type'] ?? '')?.[1]?.toLowerCase()
    if (charset !== undefined && charset !== 'utf-8' && charset !== 'utf8') {
      return done(new UnsupportedCharsetError(charset.slice(0, 40)), undefined)
    }
    if (jsonTextTooDeep(String(body), MAX_JSON_DEPTH)) return done(new JsonTooDeepError(MAX_JSON_DEPTH), undefined)
    return parse(request, String(body), done)
  })
}, { name: 'json-body' })
