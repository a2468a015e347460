import t from 'tap'
import { assertResultFits, ResultTooLargeError } from '../services/core/tasks/result-limit.ts'
import { startHarness } from './helpers/harness.ts'

t.test('assertResultFits measures UTF-8 bytes of the JSON', async (t) => {
  t.doesNotThrow(() => assertResultFits({ s: 'a'.repeat(50) }, 64))
  t.throws(() => assertResultFits({ s: 'a'.repeat(60) }, 64), ResultTooLargeError)
  t.throws(() => assertResultFits({ s: 'é'.repeat(30) }, 64), ResultTooLargeError, '2 bytes per é')
  t.doesNotThrow(() => assertResultFits(null, 16))
})

t.test('a result over TASKLANE_MAX_RESULT_BYTES fails the attempt for good with RESULT_TOO_LARGE', async (t) => {
  const h = await startHarness(t, { env: { TASKLANE_MAX_RESULT_BYTES: '1024' }, worker: true })
  const big = await h.createTask({ type: 'echo', payload: { s: 'x'.repeat(2000) }, maxAttempts: 3 })
  const small = await h.createTask({ type: 'echo', payload: { s: 'x'.repeat(100) } })
  const [b, s] = await h.waitForTerminal([big.id, small.id])
  t.equal(b!.status, 'failed')
  t.equal((b!.error as { code: string }).code, 'RESULT_TOO_LARGE')
  t.equal(b!.attempts, 1, 'not retried, though attempts were left')
  t.equal(b!.result, null, 'nothing of the result is stored')
  const attempts = (await h.app.inject({ url: `/v1/tasks/${big.id}/attempts` })).json()
  t.equal(attempts.items?.[0]?.outcome ?? attempts[0]?.outcome, 'failed')
  t.equal(s!.status, 'completed', 'a result under the cap is stored')
  t.same(s!.result, { s: 'x'.repeat(100) })
})
