import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { ConfigError } from '../services/core/config.ts'
import { createSecretBox, MASK, SecretKeyUnknownError } from '../services/core/secrets/secret-box.ts'
import { startHarness } from './helpers/harness.ts'

const key = (id: string) => `${id}:${randomBytes(32).toString('hex')}`

t.test('sealed fields open with the key that sealed them, also after a rotation, and with no other', async (t) => {
  const [k1, k2] = [key('k1'), key('k2')]
  const before = createSecretBox({ TASKLANE_ENCRYPTION_KEY: k1, TASKLANE_ENCRYPTION_PREVIOUS_KEYS: '' })
  const sealed = before.sealFields({ url: 'https://x', headers: { authorization: 'Bearer s3cret' } }, ['headers']) as Record<string, string>
  t.match(sealed.headers, /^tlsec:v1:k1:/, 'the key id is in the ciphertext')
  t.notMatch(JSON.stringify(sealed), /s3cret/)
  t.equal(sealed.url, 'https://x', 'other fields are left alone')

  const rotated = createSecretBox({ TASKLANE_ENCRYPTION_KEY: k2, TASKLANE_ENCRYPTION_PREVIOUS_KEYS: k1 })
  t.same(rotated.openFields(sealed), { url: 'https://x', headers: { authorization: 'Bearer s3cret' } }, 'the previous key still opens it')
  t.match(rotated.sealFields({ headers: {} }, ['headers']), { headers: /^tlsec:v1:k2:/ }, 'new values are sealed with the current key')

  const withoutOld = createSecretBox({ TASKLANE_ENCRYPTION_KEY: k2, TASKLANE_ENCRYPTION_PREVIOUS_KEYS: '' })
  t.throws(() => withoutOld.openFields(sealed), SecretKeyUnknownError, 'a key that is gone: a coded error, not garbage')
  const tampered = { ...sealed, headers: sealed.headers!.slice(0, -2) + (sealed.headers!.endsWith('AA') ? 'BB' : 'AA') }
  t.throws(() => before.openFields(tampered), 'a changed ciphertext fails authentication')

  t.throws(() => createSecretBox({ TASKLANE_ENCRYPTION_KEY: 'k1:tooshort', TASKLANE_ENCRYPTION_PREVIOUS_KEYS: '' }), ConfigError)
  const plain = createSecretBox({ TASKLANE_ENCRYPTION_KEY: '', TASKLANE_ENCRYPTION_PREVIOUS_KEYS: '' })
  const marked = plain.sealFields({ headers: { a: 'b' } }, ['headers'])
  t.match(marked, { headers: /^tlsec:v1:plain:/ }, 'without a key: marked (so still masked), not encrypted')
  t.same(plain.openFields(marked), { headers: { a: 'b' } })
})

t.test('the http type\'s headers are stored encrypted, masked by GET and lists, and reach the target in clear', async (t) => {
  const received: (string | undefined)[] = []
  const target = createServer((req, res) => { received.push(req.headers.authorization); res.end('ok') })
  target.listen(0, '127.0.0.1')
  await once(target, 'listening')
  t.teardown(() => target.close())
  const url = `http://127.0.0.1:${(target.address() as AddressInfo).port}/hook`

  const h = await startHarness(t, { worker: true, env: { TASKLANE_ENCRYPTION_KEY: key('prod-2026'), TASKLANE_HTTP_ALLOW_PRIVATE: 'true' } })
  const created = await h.createTask({ type: 'http', payload: { method: 'POST', url, headers: { authorization: 'Bearer s3cret-token' } } })
  t.same(created.payload, { method: 'POST', url, headers: MASK }, 'the create answer is masked')

  const [row] = await h.sql<{ payload: string }[]>`select payload::text as payload from tasks where id = ${created.id}`
  t.notMatch(row!.payload, /s3cret/, 'the secret is not in Postgres')
  t.match(row!.payload, /tlsec:v1:prod-2026:/, 'its ciphertext is, with the key id')

  const [done] = await h.waitForTerminal([created.id])
  t.equal(done!.status, 'completed')
  t.same(received, ['Bearer s3cret-token'], 'the handler sent the header in clear, once')
  t.same(done!.payload, { method: 'POST', url, headers: MASK }, 'GET masks it')
  const list = (await h.app.inject({ url: '/v1/tasks?type=http' })).json()
  t.same(list.items[0].payload.headers, MASK, 'lists mask it')
})
