import { createHmac, randomBytes } from 'node:crypto'

// Standard Webhooks (standardwebhooks.com): the signature is an HMAC-SHA256 over
// "<webhook-id>.<webhook-timestamp>.<body>" keyed with the base64-decoded part of a
// `whsec_` secret, sent as `v1,<base64>`; during a secret rotation one signature per secret,
// space-separated, so a receiver holding either secret accepts the request.

const PREFIX = 'whsec_'

/** A new signing secret: `whsec_` and 32 random bytes in base64. */
export function generateSigningSecret (): string {
  return PREFIX + randomBytes(32).toString('base64')
}

function keyOf (secret: string): Buffer {
  return Buffer.from(secret.startsWith(PREFIX) ? secret.slice(PREFIX.length) : secret, 'base64')
}

export function signature (secret: string, id: string, timestamp: number, body: string): string {
  return 'v1,' + createHmac('sha256', keyOf(secret)).update(`${id}.${timestamp}.${body}`).digest('base64')
}

/** The three Standard Webhooks headers for one request, signed with every secret given (newest first). */
export function signedHeaders (secrets: readonly string[], id: string, body: string, now = new Date()): Record<string, string> {
  if (secrets.length === 0) throw new Error('at least one signing secret is needed')
  const timestamp = Math.floor(now.getTime() / 1000)
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestamp),
    'webhook-signature': secrets.map((s) => signature(s, id, timestamp, body)).join(' '),
  }
}
