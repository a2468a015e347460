import { fileURLToPath } from 'node:url'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import type { Db } from './db-client.ts'

export const migrationsFolder = fileURLToPath(new URL('./migrations', import.meta.url))

/** Applies pending migrations; drizzle records them in drizzle.__drizzle_migrations and takes a lock. */
export async function runMigrations (db: Db): Promise<void> {
  await migrate(db, { migrationsFolder })
}
