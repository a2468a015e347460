import { randomBytes } from 'node:crypto'

/** A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64. */
export const newSigningSecret = (): string => `whsec_${randomBytes(32).toString('base64')}`

/** How long the replaced secret keeps signing beside the new one, so receivers can switch over. */
export const PREVIOUS_SECRET_TTL_MS = 24 * 3_600_000
