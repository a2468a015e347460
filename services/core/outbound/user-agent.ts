import { readFileSync } from 'node:fs'

const version = (JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version

/** What every outbound request of Tasklane's says it is. */
export const USER_AGENT = `Tasklane/${version}`
