import { parseArgs } from 'node:util'
import { ConfigError, loadConfig } from '../config.ts'
import { createDbClient } from '../db/db-client.ts'
import { createLogger } from '../log.ts'
import { createApiKeyService } from './api-key-service.ts'

// `npm run keys -- create --tenant NAME [--name LABEL] [--json]`, `revoke --id ID | --key KEY`,
// `list [--tenant NAME] [--json]`. Talks to DATABASE_URL directly; the API need not run.
const USAGE = `usage: npm run keys -- create --tenant NAME [--name LABEL] [--json]
       npm run keys -- revoke --id KEY_ID | --key KEY
       npm run keys -- list [--tenant NAME] [--json]`

const out = (line: string) => process.stdout.write(`${line}\n`)

function fail (message: string, code = 1): never {
  process.stderr.write(`tasklane-keys: ${message}\n`)
  process.exit(code)
}

let parsed
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: {
      tenant: { type: 'string' }, name: { type: 'string' }, id: { type: 'string' }, key: { type: 'string' }, json: { type: 'boolean' },
    },
  })
} catch (err) {
  fail(`${(err as Error).message}\n${USAGE}`, 64)
}
const { positionals: [command], values } = parsed

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  fail(err.message, 78)
}

const database = createDbClient(config.DATABASE_URL, { max: 1, applicationName: 'tasklane-keys' })
const keys = createApiKeyService({ db: database.db, log: createLogger(config, { service: 'tasklane-keys' }), cacheMs: 0 })

try {
  if (command === 'create') {
    if (!values.tenant) fail(`create needs --tenant\n${USAGE}`, 64)
    const created = await keys.create(values.tenant, values.name ?? 'default')
    if (values.json) out(JSON.stringify(created))
    else {
      out(`created key ${created.id} for tenant "${created.tenant}" (name "${created.name}")`)
      out(created.key)
      out('this is the only time the key is shown: store it now')
    }
  } else if (command === 'revoke') {
    if (!values.id === !values.key) fail(`revoke needs exactly one of --id or --key\n${USAGE}`, 64)
    const revoked = values.id
      ? (/^[0-9a-f-]{36}$/i.test(values.id) ? await keys.revoke({ id: values.id }) : undefined)
      : await keys.revoke({ key: values.key! })
    if (!revoked) fail('no such key')
    out(`revoked key ${revoked.id} of tenant "${revoked.tenant}"`)
  } else if (command === 'list') {
    const rows = (await keys.list(values.tenant)).map((r) => ({
      id: r.id, tenant: r.tenant, name: r.name, prefix: r.prefix,
      createdAt: r.createdAt.toISOString(), lastUsedAt: r.lastUsedAt?.toISOString() ?? null, revokedAt: r.revokedAt?.toISOString() ?? null,
    }))
    if (values.json) out(JSON.stringify(rows))
    else for (const r of rows) out(`${r.id}  ${r.tenant}  ${r.name}  ${r.prefix}…  created ${r.createdAt}  last used ${r.lastUsedAt ?? 'never'}${r.revokedAt ? `  REVOKED ${r.revokedAt}` : ''}`)
  } else {
    fail(USAGE, 64)
  }
} catch (err) {
  fail((err as Error).message)
} finally {
  await database.close()
}
