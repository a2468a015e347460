// A Tasklane receiver. Every request is verified with the Standard Webhooks signature over the
// raw body, then:
//   POST /tasks  the tasks of a webhook executor type: answers 202 and does the work afterwards,
//                calling back progress, a heartbeat, then complete or fail
//   POST others  notifications: answers 2xx at once, handles each webhook-id once
//
//   TASKLANE_TASK_SECRET=whsec_… TASKLANE_SIGNING_SECRET=whsec_… PORT=8080 node server.js
//
// TASKLANE_TASK_SECRET is the type's signingSecret, TASKLANE_SIGNING_SECRET the notification
// endpoint's; set the ones you use. During a rotation give both secrets, space-separated.
import { createServer } from 'node:http'
import { Webhook } from 'standardwebhooks'

const verifiers = (name) => (process.env[name] ?? '').split(/\s+/).filter(Boolean).map((s) => new Webhook(s))
const taskVerifiers = verifiers('TASKLANE_TASK_SECRET')
const notificationVerifiers = verifiers('TASKLANE_SIGNING_SECRET')
if (taskVerifiers.length + notificationVerifiers.length === 0) {
  throw new Error('set TASKLANE_TASK_SECRET and/or TASKLANE_SIGNING_SECRET to a whsec_… secret')
}

// In production keep these in your database (a unique column) so a restart forgets nothing.
const seen = new Set()

function verify (list, body, headers) {
  for (const wh of list) {
    try { return wh.verify(body, headers) } catch { /* try the next secret */ }
  }
  return undefined
}

/** The work of a task. `progress(p)` reports how far it got and says whether the task was cancelled. */
async function work (task, progress) {
  if (typeof task.payload.text !== 'string') throw Object.assign(new Error('payload.text is not a string'), { code: 'NO_TEXT', retryable: false })
  const words = task.payload.text.split(/\s+/).filter(Boolean)
  if (await progress(50)) return undefined
  return { words: words.length }
}

/** POST <callback.url>/<action>: the token in the URL is the only credential, good for this attempt. */
async function callBack (callback, action, body) {
  const res = await fetch(`${callback.url}/${action}`, {
    method: 'POST',
    ...(body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  })
  // 409: the attempt already ended (deadline, cancel, or another attempt took over); stop.
  if (res.status === 409) return { ended: true }
  if (!res.ok) throw new Error(`${action}: ${res.status} ${await res.text()}`)
  return res.json()
}

async function runLater ({ task, callback }) {
  const { cancelRequested, ended } = await callBack(callback, 'heartbeat')
  if (cancelRequested || ended) return
  try {
    const result = await work(task, async (p) => {
      const reply = await callBack(callback, 'progress', { progress: p })
      return reply.cancelRequested || reply.ended
    })
    if (result !== undefined) await callBack(callback, 'complete', { result })
  } catch (err) {
    await callBack(callback, 'fail', { error: { message: err.message, code: err.code }, retryable: err.retryable !== false })
  }
}

function onTask (request, res) {
  if (request.callback === null) {
    // Tasklane runs without TASKLANE_PUBLIC_URL: no callbacks, so the answer carries the result.
    work(request.task, async () => false).then(
      (result) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(result)),
      (err) => res.writeHead(err.retryable === false ? 422 : 500).end(err.message))
    return
  }
  // Answer within the type's timeoutMs, work later. A retry of the task is a new attempt with a
  // new token; key your own records on the idempotency-key header (the task id).
  res.writeHead(202).end()
  runLater(request).catch((err) => console.error(err))
}

function onNotification (event, id, res) {
  // Answer first: a slow answer counts as a failure and is sent again.
  res.writeHead(204).end()
  if (seen.has(id)) return
  seen.add(id)
  // Your work: the event is { type, timestamp, data: <task> }.
  console.log(JSON.stringify({ received: event.type, task: event.data.id, status: event.data.status }))
}

const server = createServer((req, res) => {
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const body = Buffer.concat(chunks).toString('utf8')
    const tasks = req.url === '/tasks'
    const payload = verify(tasks ? taskVerifiers : notificationVerifiers, body, req.headers)
    if (!payload) { res.writeHead(401).end(); return }
    if (tasks) onTask(payload, res)
    else onNotification(payload, req.headers['webhook-id'], res)
  })
})
server.listen(Number(process.env.PORT ?? 8080), process.env.HOST ?? '127.0.0.1', () => {
  console.log(JSON.stringify({ listening: server.address().port }))
})
