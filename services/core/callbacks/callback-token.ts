import { createHash, randomBytes } from 'node:crypto'

// A webhook attempt's callback token: 32 random bytes in base64url, sent once in the request
// body and stored only as its SHA-256, which is what a callback is looked up by.

const FORM = /^[A-Za-z0-9_-]{43}$/

export const hashCallbackToken = (token: string): string => createHash('sha256').update(token).digest('hex')

export function newCallbackToken (): { token: string, hash: string } {
  const token = randomBytes(32).toString('base64url')
  return { token, hash: hashCallbackToken(token) }
}

/** Whether a path segment has the form of a token at all (anything else is not worth a lookup). */
export const isCallbackToken = (value: string): boolean => FORM.test(value)

/** `<TASKLANE_PUBLIC_URL>/v1/callbacks/<token>`; the four callbacks append to it. */
export const callbackUrl = (publicUrl: string, token: string): string => `${publicUrl.replace(/\/+$/, '')}/v1/callbacks/${token}`
