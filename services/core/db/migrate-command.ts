import { ConfigError, loadConfig } from '../config.ts'
import { createDbClient } from './db-client.ts'
import { ensureDatabase } from './ensure-database.ts'
import { runMigrations } from './migrate.ts'

try {
  const config = loadConfig()
  await ensureDatabase(config.DATABASE_URL)
  const database = createDbClient(config.DATABASE_URL, { max: 1, applicationName: 'tasklane-migrate' })
  try {
    await runMigrations(database.db)
    process.stdout.write('tasklane: migrations applied\n')
  } finally {
    await database.close()
  }
} catch (err) {
  const message = err instanceof ConfigError ? err.message : `migration failed: ${(err as Error).message}`
  process.stderr.write(`tasklane-migrate: ${message}\n`)
  process.exit(1)
}
