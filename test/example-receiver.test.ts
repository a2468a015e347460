import { spawn } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import t, { type Test } from 'tap'
import { generateSigningSecret, signedHeaders } from '../services/core/outbound/webhook-signer.ts'
import { startHarness } from './helpers/harness.ts'

const NODE_EXAMPLE = fileURLToPath(new URL('../examples/node-receiver/server.js', import.meta.url))
const PYTHON_EXAMPLE = fileURLToPath(new URL('../examples/python/receiver.py', import.meta.url))

/** Starts an example receiver on a free port; resolves with its port and the lines it prints. */
async function startExample (t: { teardown: (fn: () => unknown) => void }, command: string, script: string, env: Record<string, string>) {
  const child = spawn(command, [script], { env: { ...process.env, ...env, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'] })
  t.teardown(() => { child.kill() })
  child.stdout!.setEncoding('utf8')
  const lines: string[] = []
  child.stdout!.on('data', (c: string) => lines.push(...c.trim().split('\n')))
  await once(child.stdout!, 'data')
  return { port: JSON.parse(lines[0]!).listening as number, lines }
}

const post = (url: string, headers: Record<string, string>, body: string) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body })

t.test('the example receiver accepts a notification Tasklane signed (either secret of a rotation), once per id, and refuses others', async (t) => {
  const [secret, next] = [generateSigningSecret(), generateSigningSecret()]
  const { port, lines } = await startExample(t, process.execPath, NODE_EXAMPLE, { TASKLANE_SIGNING_SECRET: `${secret} ${next}` })
  const url = `http://127.0.0.1:${port}/`
  const body = JSON.stringify({ type: 'task.completed', timestamp: new Date().toISOString(), data: { id: 't1', status: 'completed' } })
  t.equal((await post(url, signedHeaders([next], 'm1', body), body)).status, 204, 'signed with the new secret')
  t.equal((await post(url, signedHeaders([secret], 'm1', body), body)).status, 204, 'the same id again, signed with the old secret')
  t.equal((await post(url, signedHeaders([generateSigningSecret()], 'm2', body), body)).status, 401, 'another secret is refused')
  t.equal((await post(url, signedHeaders([secret], 'm3', body), body + ' ')).status, 401, 'a changed body is refused')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(lines.filter((l) => l.includes('"received"')).length, 1, 'the event was handled once')
})

/**
 * A real API (listening, as TASKLANE_PUBLIC_URL) and worker, a webhook type whose executor is
 * the example: the type is registered first, for its secret, then pointed at the example
 * started with it, as a user would. The example answers 202 and finishes through callbacks.
 */
async function runsTasksThroughCallbacks (t: Test, command: string, script: string) {
  const h = await startHarness(t, { env: { TASKLANE_WEBHOOK_ALLOWED_HOSTS: '127.0.0.1' } })
  await h.app.listen({ port: 0, host: '127.0.0.1' })
  const publicUrl = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`
  const register = (url: string) => h.app.inject({
    method: 'PUT', url: '/v1/task-types/word-count',
    payload: { executor: { kind: 'webhook', url, timeoutMs: 5_000 }, resultSchema: { type: 'object', required: ['words'] } },
  })
  const created = await register('http://127.0.0.1:9/tasks')
  t.equal(created.statusCode, 201, 'registered, with its signing secret')
  const secret = created.json().signingSecret as string
  const { port } = await startExample(t, command, script, { TASKLANE_TASK_SECRET: secret })
  const tasksUrl = `http://127.0.0.1:${port}/tasks`
  t.equal((await register(tasksUrl)).statusCode, 200, 'pointed at the example')
  const worker = await h.startWorker({ TASKLANE_PUBLIC_URL: publicUrl })

  const good = await h.createTask({ type: 'word-count', payload: { text: 'one two three' } })
  const bad = await h.createTask({ type: 'word-count', payload: { text: 42 } })
  const [done, failed] = await h.waitForTerminal([good.id, bad.id], 30_000)
  t.match(done, { status: 'completed', result: { words: 3 }, progress: 50, attempts: 1 }, 'completed by callback with the example\'s result')
  t.match(failed, { status: 'failed', attempts: 1, error: { code: 'NO_TEXT' } }, 'failed by callback, not retried')

  // The work came back by callback, not in the answer.
  const metrics = await (await fetch(`http://127.0.0.1:${worker.opsPort}/metrics`)).text()
  const count = (outcome: string) => Number(new RegExp(`tasklane_webhook_requests_total\\{kind="executor",outcome="${outcome}"[^}]*\\} (\\d+)`).exec(metrics)?.[1] ?? 0)
  t.same({ accepted: count('accepted'), success: count('success') }, { accepted: 2, success: 0 }, 'both requests were answered 202')

  // Requests Tasklane did not sign as they arrive are refused and start nothing.
  const body = JSON.stringify({ task: { id: good.id, type: 'word-count', attempt: 2, maxAttempts: 3, payload: { text: 'x' } }, callback: { url: `${publicUrl}/v1/callbacks/${'A'.repeat(43)}`, token: 'A'.repeat(43) } })
  t.equal((await post(tasksUrl, signedHeaders([secret], `${good.id}.2`, body), body.replace('"x"', '"x y"'))).status, 401, 'a changed body is refused')
  t.equal((await post(tasksUrl, signedHeaders([generateSigningSecret()], `${good.id}.2`, body), body)).status, 401, 'another secret is refused')
  const tampered = signedHeaders([secret], `${good.id}.2`, body)
  tampered['webhook-id'] = `${bad.id}.2`
  t.equal((await post(tasksUrl, tampered, body)).status, 401, 'a signature moved to another webhook-id is refused')
  t.match(await h.getTask(good.id), { status: 'completed', result: { words: 3 }, attempts: 1 }, 'the task is unchanged')

  // Without TASKLANE_PUBLIC_URL the body has no callback: the answer carries the result.
  const sync = async (payload: unknown) => {
    const b = JSON.stringify({ task: { id: good.id, type: 'word-count', attempt: 1, maxAttempts: 3, payload }, callback: null })
    const res = await post(tasksUrl, signedHeaders([secret], `${good.id}.9`, b), b)
    return { status: res.status, body: res.status === 200 ? await res.json() : null }
  }
  t.same(await sync({ text: 'a b' }), { status: 200, body: { words: 2 } }, 'no callback: 200 with the result')
  t.same(await sync({ text: 42 }), { status: 422, body: null }, 'no callback, bad payload: a status Tasklane fails at once')
}

t.test('the Node example verifies a task request, answers 202 and completes or fails it by callback', async (t) => {
  await runsTasksThroughCallbacks(t, process.execPath, NODE_EXAMPLE)
})

t.test('the standard-library Python example does the same', async (t) => {
  await runsTasksThroughCallbacks(t, 'python3', PYTHON_EXAMPLE)
})
