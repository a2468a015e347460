import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

export type Received = { id: string, headers: IncomingHttpHeaders, body: string, json: Record<string, unknown>, verified: boolean }

/**
 * A webhook receiver on 127.0.0.1 (port 0) that verifies every request's signature with the
 * Standard Webhooks library, independently of Tasklane's signer, and dedupes by webhook-id as
 * a careful receiver does: `accepted` holds the requests it answered 2xx, one per id.
 */
export async function startReceiver (t: { teardown: (fn: () => unknown) => void }, secrets: () => string[],
  answer: (r: Received, res: ServerResponse) => void = (_r, res) => { res.end() }) {
  const all: Received[] = []
  const accepted = new Map<string, Received>()
  let duplicates = 0
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => {
      const headers = req.headers
      const verified = secrets().some((s) => {
        try { new Webhook(s).verify(body, headers as Record<string, string>); return true } catch { return false }
      })
      const r: Received = { id: String(headers['webhook-id']), headers, body, json: JSON.parse(body || '{}'), verified }
      all.push(r)
      if (!verified) { res.statusCode = 401; res.end(); return }
      const end = res.end.bind(res)
      res.end = ((...args: Parameters<typeof end>) => {
        if (res.statusCode >= 200 && res.statusCode < 300) {
          if (accepted.has(r.id)) duplicates++
          else accepted.set(r.id, r)
        }
        return end(...args)
      }) as typeof res.end
      answer(r, res)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, all, accepted, duplicates: () => duplicates }
}
