import type { Secrets } from './task-type-repository.ts'

/**
 * A webhook type's signing secrets as an executor signs with them: stored sealed (like
 * notification endpoints' secrets, so a database dump alone cannot sign requests), opened here.
 * A secret stored before sealing existed reads back as it is.
 */
export function openTypeSecrets (read: (tenant: string, name: string) => Promise<Secrets | undefined>, open: (sealed: string) => string) {
  return async (tenant: string, name: string): Promise<Secrets | undefined> => {
    const secrets = await read(tenant, name)
    return secrets && {
      ...secrets,
      current: secrets.current === null ? null : open(secrets.current),
      previous: secrets.previous === null ? null : open(secrets.previous),
    }
  }
}
