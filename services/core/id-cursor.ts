import { ValidationError } from './errors.ts'
import { isUuid } from './ids.ts'

// Lists are newest first over UUIDv7 ids; the cursor is the last id of a page, opaque to clients.

export const encodeIdCursor = (id: string): string => Buffer.from(id).toString('base64url')

export function decodeIdCursor (cursor: string): string {
  const id = Buffer.from(cursor, 'base64url').toString()
  if (!isUuid(id)) throw new ValidationError([{ path: '/querystring/cursor', message: 'is not a cursor this API returned' }])
  return id
}
