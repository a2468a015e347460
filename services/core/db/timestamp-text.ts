// Postgres writes a timestamptz as "0050-01-01 00:00:00+00": not ISO 8601, so JavaScript's
// Date falls back to its legacy parser, which reads years 0001-0099 as 1901-1999 or 2000-2049.
const PG_TIMESTAMPTZ = /^(\d{4})-(\d\d)-(\d\d) (\d\d:\d\d:\d\d(?:\.\d+)?)([+-]\d\d)(?::(\d\d))?$/

/** The ISO 8601 form of a Postgres timestamptz, which every Date parses alike; other text as given. */
export function pgTimestampToIso (text: string): string {
  const m = PG_TIMESTAMPTZ.exec(text)
  if (!m) return text
  return `${m[1]}-${m[2]}-${m[3]}T${m[4]}${m[5]}:${m[6] ?? '00'}`
}

/** A date Postgres stores and gives back unchanged: years 0001 to 9999 in UTC. */
export function isStorableDate (date: Date): boolean {
  const year = date.getUTCFullYear()
  return !Number.isNaN(date.getTime()) && year >= 1 && year <= 9999
}

export const STORABLE_DATE_MESSAGE = 'must be an RFC 3339 date-time from year 0001 to 9999 (in UTC)'
