import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import { generateSigningSecret, signedHeaders } from '../services/core/outbound/webhook-signer.ts'

t.test('the example receiver accepts a request Tasklane signed (either secret of a rotation), once per id, and refuses others', async (t) => {
  const [secret, next] = [generateSigningSecret(), generateSigningSecret()]
  const child = spawn(process.execPath, [fileURLToPath(new URL('../examples/node-receiver/server.js', import.meta.url))], {
    env: { ...process.env, TASKLANE_SIGNING_SECRET: `${secret} ${next}`, PORT: '0' }, stdio: ['ignore', 'pipe', 'inherit'],
  })
  t.teardown(() => { child.kill() })
  child.stdout!.setEncoding('utf8')
  const lines: string[] = []
  child.stdout!.on('data', (c: string) => lines.push(...c.trim().split('\n')))
  await once(child.stdout!, 'data')
  const port = JSON.parse(lines[0]!).listening as number
  const body = JSON.stringify({ type: 'task.completed', timestamp: new Date().toISOString(), data: { id: 't1', status: 'completed' } })
  const post = (headers: Record<string, string>, b = body) =>
    fetch(`http://127.0.0.1:${port}/`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: b })
  t.equal((await post(signedHeaders([next], 'm1', body))).status, 204, 'signed with the new secret')
  t.equal((await post(signedHeaders([secret], 'm1', body))).status, 204, 'the same id again, signed with the old secret')
  t.equal((await post(signedHeaders([generateSigningSecret()], 'm2', body))).status, 401, 'another secret is refused')
  t.equal((await post(signedHeaders([secret], 'm3', body), body + ' ')).status, 401, 'a changed body is refused')
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.equal(lines.filter((l) => l.includes('"received"')).length, 1, 'the event was handled once')
})
