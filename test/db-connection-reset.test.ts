import postgres from 'postgres'
import t from 'tap'
import { createDbClient } from '../services/core/db/db-client.ts'
import { connectDriverSocket } from '../services/core/db/driver-socket.ts'
import { isOutage } from '../services/core/outage.ts'
import { startPostgresRelay } from './helpers/fault-tools.ts'
import { createTestDatabase } from './helpers/services.ts'

// A statement handed to a connection whose socket was just reset (after the driver heard the
// error, before the socket closed) must settle: the write batcher keeps a row's key until its
// statement ends, so one that never settles holds that row's writes for ever.

const settled = (p: Promise<unknown>, ms: number): Promise<string> => Promise.race([
  p.then(() => 'answered', (err: unknown) => (isOutage(err) ? 'failed as an outage' : `failed: ${String(err)}`)),
  new Promise<string>((resolve) => setTimeout(() => resolve(`unsettled after ${ms} ms`), ms).unref()),
])

t.test('a statement queued on a connection between its reset and its close fails as an outage, and the pool goes on', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const relay = await startPostgresRelay(t, database.url)
  const client = createDbClient(relay.url, { max: 1, applicationName: 'tasklane-test:reset' })
  t.teardown(() => client.sql.end({ timeout: 1 }))
  const { sql } = client
  await sql`select 1`

  let retried: Promise<unknown> | undefined
  // What the write batcher does when a batch fails: it sends its rows again at once, while
  // the pool still lists the reset connection as busy, so they are pipelined onto it.
  const first = sql`select pg_sleep(5)`.catch((err: unknown) => {
    retried = sql`select 2 as n`
    throw err
  })
  await new Promise((resolve) => setTimeout(resolve, 300))
  relay.reset()
  t.equal(await settled(first, 3_000), 'failed as an outage', 'the statement on the wire fails')
  t.ok(retried, 'a statement was queued right after the failure')
  t.equal(await settled(retried!, 3_000), 'failed as an outage', 'the statement queued before the close fails too, instead of never settling')
  for (let i = 0; i < 2; i++) {
    t.equal(await settled(sql`select 3 as n`, 3_000), 'answered', 'later statements get a connection and an answer')
  }
})

t.test('a statement handed to an idle connection between its reset and its close fails, instead of answering an empty result later', async (t) => {
  const database = await createTestDatabase()
  t.teardown(() => database.drop())
  const relay = await startPostgresRelay(t, database.url)
  let inGap: Promise<string> | undefined
  // The driver's own socket option, with a listener that sends a write the moment the reset is heard.
  const sql: postgres.Sql = postgres(relay.url, {
    max: 1,
    onnotice: () => {},
    socket: (target: Parameters<typeof connectDriverSocket>[0]) => {
      const socket = connectDriverSocket(target)
      socket.on('error', () => queueMicrotask(() => {
        inGap ??= settled(sql`update pg_class set relname = relname where false`, 3_000)
      }))
      return socket
    },
  } as postgres.Options<Record<string, postgres.PostgresType>>)
  t.teardown(() => sql.end({ timeout: 1 }))
  await sql`select 1`
  relay.reset()
  await new Promise((resolve) => setTimeout(resolve, 200))
  t.ok(inGap, 'a write was sent right after the reset was heard')
  t.equal(await settled(sql`select 2 as n`, 3_000), 'answered', 'the next statement reconnects and is answered')
  t.equal(await inGap, 'failed as an outage', 'the write fails (never run), rather than answering as if it matched no row')
})
