/**
 * A result larger than TASKLANE_MAX_RESULT_BYTES (as JSON, in UTF-8 bytes) fails its attempt
 * for good: running it again would make the same result. Every executor checks a result with
 * this before it records the attempt as completed, so the cap is the same for all of them.
 */
export class ResultTooLargeError extends Error {
  readonly code = 'RESULT_TOO_LARGE'
  constructor (bytes: number, maxBytes: number) {
    super(`the result is ${bytes} bytes as JSON; the limit is ${maxBytes} bytes`)
    this.name = 'ResultTooLargeError'
  }
}

/** Throws ResultTooLargeError when `result` (already made storable) is over `maxBytes`. */
export function assertResultFits (result: unknown, maxBytes: number): void {
  if (result === undefined || result === null) return
  const text = JSON.stringify(result)
  // Most results are far below the cap: their length in UTF-16 units times 3 bounds the bytes.
  if (text.length * 3 <= maxBytes) return
  const bytes = Buffer.byteLength(text)
  if (bytes > maxBytes) throw new ResultTooLargeError(bytes, maxBytes)
}
