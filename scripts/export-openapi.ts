// Writes the OpenAPI document the API serves to clients/typescript/openapi.json, from which
// `npm run generate` (in clients/typescript) makes the client's types. Needs no running server:
// it builds the app and asks it (Postgres and Redis are not used for this).
import { writeFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { buildServer } from '../services/api/build-server.ts'
import { loadConfig } from '../services/core/config.ts'
import { createLogger } from '../services/core/log.ts'
import { openApiDeps } from '../services/api/open-deps.ts'

const config = loadConfig({ ...process.env, LOG_LEVEL: 'silent', TASKLANE_AUTH: 'disabled' })
const log = createLogger(config, { service: 'export-openapi' })
const deps = openApiDeps(config, log)
const app = await buildServer(deps, log)
await app.ready()
const out = fileURLToPath(new URL('../clients/typescript/openapi.json', import.meta.url))
writeFileSync(out, `${JSON.stringify(app.swagger(), null, 2)}\n`)
await app.close()
await deps.close()
console.log(`wrote ${out}`)
