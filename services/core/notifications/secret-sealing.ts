import type { createSecretBox } from '../secrets/secret-box.ts'

type SecretBox = Pick<ReturnType<typeof createSecretBox>, 'sealFields' | 'openFields'>

/**
 * Signing secrets are stored sealed by the same box as secret payload fields (AES-256-GCM with
 * TASKLANE_ENCRYPTION_KEY), so a database dump alone cannot sign requests.
 */
export function secretSealing (box: SecretBox) {
  return {
    seal: (secret: string): string => (box.sealFields({ secret }, ['secret']) as { secret: string }).secret,
    open: (sealed: string): string => (box.openFields({ secret: sealed }) as { secret: string }).secret,
  }
}
