import t from 'tap'
import { firstIdAt, isUuid, newTaskId } from '../services/core/ids.ts'

t.test('task ids are version 7 UUIDs that increase within and across milliseconds', async (t) => {
  const ids = Array.from({ length: 200_000 }, () => newTaskId())
  t.equal(new Set(ids).size, ids.length, 'no id repeats')
  const malformed = ids.filter((id) => !isUuid(id) || id[14] !== '7' || !'89ab'.includes(id[19]!))
  t.same(malformed.slice(0, 3), [], 'version 7, RFC 9562 variant')
  const outOfOrder = ids.findIndex((id, i) => i > 0 && id <= ids[i - 1]!)
  t.equal(outOfOrder, -1, 'each id sorts above the one before')
  const msOf = (id: string): number => parseInt(id.slice(0, 8) + id.slice(9, 13), 16)
  t.ok(ids.every((id) => Math.abs(msOf(id) - Date.now()) < 60_000), 'the time field is the creation time')
})

t.test('firstIdAt bounds every id made at or after its millisecond', async (t) => {
  const before = Date.now()
  const id = newTaskId()
  t.ok(firstIdAt(before) <= id, 'an id made now sorts at or above the bound of an earlier millisecond')
  t.ok(firstIdAt(Date.now() + 1000) > newTaskId(), 'and below the bound of a later one')
})
