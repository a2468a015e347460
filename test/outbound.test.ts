import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Webhook } from 'standardwebhooks'
import { createAddressPolicy, parseAllowedHosts } from '../services/core/outbound/address-policy.ts'
import { createOutboundClient } from '../services/core/outbound/outbound-client.ts'
import { OutboundError } from '../services/core/outbound/outbound-error.ts'
import { generateSigningSecret, signedHeaders } from '../services/core/outbound/webhook-signer.ts'

async function receiver (t: { teardown: (fn: () => unknown) => void }, handle: (req: IncomingMessage, res: ServerResponse, body: string) => void) {
  const server = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (c: string) => { body += c })
    req.on('end', () => handle(req, res, body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { server.closeAllConnections(); server.close() })
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

t.test('the allowlist takes host names, name suffixes and CIDR ranges, and refuses anything else', async (t) => {
  const allowed = parseAllowedHosts(' billing.internal, .svc.cluster.local ,10.0.0.0/8, 127.0.0.1, fd00::/8 ')
  t.same(allowed.names, ['billing.internal', '.svc.cluster.local'])
  t.equal(allowed.ranges.length, 3)
  const policy = createAddressPolicy({ allowPrivate: false, allowed })
  t.ok(policy.permits('example.com', '93.184.215.14'), 'a public address is always allowed')
  t.ok(policy.permits('billing.internal', '192.168.1.5'), 'an allowed name may resolve to a private address')
  t.ok(policy.permits('api.ns.svc.cluster.local', '172.20.0.3'), 'a name under an allowed suffix too')
  t.ok(policy.permits('x.example', '10.1.2.3'), 'an address in an allowed range')
  t.ok(policy.permits('127.0.0.1', '::ffff:127.0.0.1'), 'an IPv4-mapped address matches its IPv4 range')
  t.notOk(policy.permits('evil.example', '192.168.1.5'), 'a private address outside the list')
  t.notOk(policy.permits('evil.example', '127.0.0.2'), 'a loopback address outside the list')
  t.notOk(policy.permits('evilbilling.internal', '192.168.1.5'), 'a name is matched whole, not as a suffix')
  t.ok(policy.permits('x', 'fd00::1'))
  t.notOk(policy.permits('x', '169.254.169.254'), 'cloud metadata stays refused')
  for (const bad of ['10.0.0.0/99', 'http://x', 'a b', '*.x']) t.throws(() => parseAllowedHosts(bad), `"${bad}" is refused`)
})

t.test('signatures verify with the Standard Webhooks library, each secret of a rotation on its own', async (t) => {
  const [oldSecret, newSecret] = [generateSigningSecret(), generateSigningSecret()]
  t.match(newSecret, /^whsec_[A-Za-z0-9+/]{43}=$/)
  const body = JSON.stringify({ type: 'task.completed', data: { id: 'x', text: 'é ✓' } })
  const headers = signedHeaders([newSecret, oldSecret], 'msg_1', body)
  t.equal(headers['webhook-signature']!.split(' ').length, 2, 'two signatures during a rotation')
  t.same(new Webhook(newSecret).verify(body, headers), JSON.parse(body), 'a receiver with the new secret accepts it')
  t.same(new Webhook(oldSecret).verify(body, headers), JSON.parse(body), 'a receiver with the old secret accepts it')
  t.throws(() => new Webhook(generateSigningSecret()).verify(body, headers), 'another secret is refused')
  t.throws(() => new Webhook(newSecret).verify(body + ' ', headers), 'a changed body is refused')
})

t.test('the client reports timeouts, refused addresses and network errors, and caps the body it reads', async (t) => {
  const url = await receiver(t, (req, res) => {
    if (req.url === '/slow') return setTimeout(() => res.end('late'), 2_000)
    res.end('x'.repeat(10_000))
  })
  const open = createOutboundClient(createAddressPolicy({ allowPrivate: false, allowed: parseAllowedHosts('127.0.0.1') }))
  const closed = createOutboundClient(createAddressPolicy({ allowPrivate: false }))
  t.teardown(() => Promise.all([open.close(), closed.close()]))

  const big = await open.send({ method: 'GET', url, timeoutMs: 5_000, bodyCapBytes: 100 })
  t.equal(big.status, 200)
  t.equal(big.text.length, 100)
  t.equal(big.truncated, true)

  const slow = await open.send({ method: 'GET', url: `${url}/slow`, timeoutMs: 200 }).catch((e: unknown) => e)
  t.ok(slow instanceof OutboundError && slow.code === 'TIMEOUT' && slow.retryable, 'a slow answer is a retryable TIMEOUT')

  for (const target of [url, url.replace('127.0.0.1', 'localhost')]) {
    const refused = await closed.send({ method: 'GET', url: target, timeoutMs: 5_000 }).catch((e: unknown) => e)
    t.ok(refused instanceof OutboundError && refused.code === 'FORBIDDEN_ADDRESS' && !refused.retryable, `${target}: FORBIDDEN_ADDRESS, not retried`)
  }

  const port = Number(new URL(url).port)
  const free = createServer()
  free.listen(0, '127.0.0.1')
  await once(free, 'listening')
  const deadPort = (free.address() as AddressInfo).port
  free.close()
  const dead = await open.send({ method: 'GET', url: `http://127.0.0.1:${deadPort}/`, timeoutMs: 5_000 }).catch((e: unknown) => e)
  t.ok(dead instanceof OutboundError && dead.code === 'ECONNREFUSED' && dead.retryable, 'a refused connection is retryable')
  t.not(deadPort, port)
})
