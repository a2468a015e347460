import t, { type Test } from 'tap'
import { Redis } from 'ioredis'
import { createDispatchWindow } from '../services/core/fairness/dispatch-window.ts'
import { createLogger } from '../services/core/log.ts'
import { deletePrefixKeys, serviceEndpoints, uniqueName } from './helpers/services.ts'

// The scripts on a real Redis: the window a tenant gets depends on whether another tenant has
// work in the queue, which the counter hash tells by holding only tenants with tasks dispatched.
const SHARED = { cap: 200, alone: 10_000 }

async function openWindow (t: Test) {
  const { redisUrl } = await serviceEndpoints()
  const redis = new Redis(redisUrl)
  const prefix = uniqueName('tl_window')
  t.teardown(async () => { await deletePrefixKeys(redisUrl, prefix); redis.disconnect() })
  const window = createDispatchWindow({ redis, prefix, log: createLogger({ LOG_LEVEL: 'silent' } as never, {}) })
  return { window, redis }
}

t.test('alone in a queue a tenant gets the larger window; beside another tenant the shared one', async (t) => {
  const { window, redis } = await openWindow(t)
  t.same(await window.reserve('default', 'acme', 3_000, SHARED), { granted: 3_000, first: 0 }, 'alone: 3,000 at once')
  t.same(await window.reserve('default', 'globex', 50, SHARED), { granted: 50, first: 0 }, 'the newcomer gets slots from 0')
  t.same(await window.reserve('default', 'acme', 10, SHARED), { granted: 0, first: 3_000 }, 'beside globex, acme is past the shared window')
  t.same(await window.heldFlags('default'), ['acme'], 'and is marked as having held tasks')

  await window.release(Array.from({ length: 50 }, () => ({ tenant: 'globex', queue: 'default' })))
  t.same(await window.counters('default'), new Map([['acme', 3_000]]), 'a tenant with nothing dispatched leaves the counter hash')
  t.same(await window.reserve('default', 'acme', 10, SHARED, false), { granted: 10, first: 3_000 }, 'alone again, acme gets more')
  t.same(await window.reserve('default', 'acme', 10, SHARED), { granted: 0, first: 0 }, 'but its new tasks still queue behind its held ones')

  await window.setHeldFlags('default', [], ['acme'])
  t.same(await window.reserve('default', 'acme', 8_000, SHARED), { granted: 6_990, first: 3_010 }, 'never past the window for a tenant alone')
  t.same(await window.reserve('reports', 'globex', 1, SHARED), { granted: 1, first: 0 }, 'another queue is another window')
  t.same(await window.reserve('default', 'globex', 300, { cap: 2, alone: 2 }), { granted: 2, first: 0 }, 'a concurrency limit holds, alone or not')

  await window.adjust('default', 'globex', -5)
  t.equal(await redis.hexists(window.keys.counter('default'), 'globex'), 0, 'a correction to zero or below removes the entry')
})

t.test('reservations asked together go out in one script call and answer as if made one by one', async (t) => {
  const { window, redis } = await openWindow(t)
  // How many requests each script call this client sends carries, by counter key (ioredis
  // sends a defined command as EVALSHA [sha, key count, keys..., args...], and sends it again
  // if Redis lost its scripts, which the shared Redis of a test run may do).
  const carried = new Map<string, Set<number>>()
  const send = redis.sendCommand.bind(redis)
  redis.sendCommand = ((command: { name: string, args: unknown[] }) => {
    if (command.name === 'evalsha') {
      const key = String(command.args[2])
      carried.set(key, (carried.get(key) ?? new Set()).add((command.args.length - 4) / 5))
    }
    return send(command as never)
  }) as typeof redis.sendCommand

  const answers = await Promise.all([
    window.reserve('default', 'acme', 150, SHARED),
    window.reserve('default', 'globex', 100, SHARED),
    window.reserve('default', 'acme', 100, SHARED),
    window.reserve('default', 'acme', 10, SHARED),
    window.reserve('default', 'acme', 10, SHARED, false),
    window.reserve('reports', 'acme', 500, SHARED),
  ])
  t.same(answers, [
    { granted: 150, first: 0 },
    { granted: 100, first: 0 },
    { granted: 50, first: 150 },
    { granted: 0, first: 0 },
    { granted: 0, first: 200 },
  ].concat([{ granted: 500, first: 0 }]), 'alone, then beside globex past the shared window, then behind its own held tasks')
  t.same(await window.counters('default'), new Map([['acme', 200], ['globex', 100]]), 'the counters as the answers say')
  t.same(await window.heldFlags('default'), ['acme'], 'acme is marked as having held tasks')
  t.same(await window.counters('reports'), new Map([['acme', 500]]), 'another queue is another window')
  t.same(carried, new Map([[window.keys.counter('default'), new Set([5])], [window.keys.counter('reports'), new Set([1])]]),
    'one script call per queue, carrying all of its requests')

  const again = await Promise.all([
    window.reserve('reports', 'globex', 300, SHARED),
    window.reserve('reports', 'acme', 1, SHARED),
  ])
  t.same(again, [{ granted: 200, first: 0 }, { granted: 0, first: 500 }],
    'a newcomer ends the larger window of the tenant alone within the same call')
})
