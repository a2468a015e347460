// A Tasklane notification receiver: verifies the Standard Webhooks signature over the raw
// body, answers 2xx at once, handles each webhook-id once, and does the work afterwards.
//
//   TASKLANE_SIGNING_SECRET=whsec_… PORT=8080 node server.js
//
// During a secret rotation set TASKLANE_SIGNING_SECRET to both secrets, space-separated.
import { createServer } from 'node:http'
import { Webhook } from 'standardwebhooks'

const verifiers = (process.env.TASKLANE_SIGNING_SECRET ?? '').split(/\s+/).filter(Boolean).map((s) => new Webhook(s))
if (verifiers.length === 0) throw new Error('set TASKLANE_SIGNING_SECRET to the endpoint\'s whsec_… secret')

// In production keep these in your database (a unique column) so a restart forgets nothing.
const seen = new Set()

function verify (body, headers) {
  for (const wh of verifiers) {
    try { return wh.verify(body, headers) } catch { /* try the next secret */ }
  }
  return undefined
}

async function handle (event) {
  // Your work: the event is { type, timestamp, data: <task> }.
  console.log(JSON.stringify({ received: event.type, task: event.data.id, status: event.data.status }))
}

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8')
    const event = verify(body, req.headers)
    if (!event) { res.writeHead(401).end(); return }
    const id = req.headers['webhook-id']
    // Answer first: a slow answer counts as a failure and is sent again.
    res.writeHead(204).end()
    if (seen.has(id)) return
    seen.add(id)
    handle(event).catch((err) => console.error(err))
  })
})
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }))
})
