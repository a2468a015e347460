import postgres from 'postgres'

/** Creates the database named in `url` when it does not exist yet, so a first `migrate` just works. */
export async function ensureDatabase (url: string): Promise<void> {
  const target = new URL(url)
  const name = decodeURIComponent(target.pathname.replace(/^\//, ''))
  if (!name) return
  const admin = new URL(url)
  admin.pathname = '/postgres'
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {}, connect_timeout: 5 })
  try {
    const [row] = await sql`select 1 as present from pg_database where datname = ${name}`
    if (!row) await sql.unsafe(`create database "${name.replace(/"/g, '""')}"`)
  } finally {
    await sql.end({ timeout: 5 })
  }
}
