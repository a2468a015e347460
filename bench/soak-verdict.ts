/** One figure the soak samples: a process' RSS, the tasks table's size. */
export type Series = { name: string, unit: string, values: number[] }

export type Verdict = { name: string, flat: boolean, growthPercent: number, first: number, last: number }

/**
 * Flat after warm-up: over the samples from `warmupSamples` on, the least-squares trend line
 * rises by less than `tolerancePercent` of their mean from the first of them to the last. A
 * trend, not first-to-last, so that a garbage collection or an autovacuum landing on one
 * sample does not decide it; a steady leak moves the whole line.
 */
export function judgeFlat (series: Series, warmupSamples: number, tolerancePercent: number): Verdict {
  const values = series.values.slice(warmupSamples)
  const first = values[0] ?? 0
  const last = values.at(-1) ?? 0
  if (values.length < 2) return { name: series.name, flat: true, growthPercent: 0, first, last }
  const n = values.length
  const meanX = (n - 1) / 2
  const meanY = values.reduce((sum, v) => sum + v, 0) / n
  let covariance = 0
  let variance = 0
  values.forEach((v, x) => { covariance += (x - meanX) * (v - meanY); variance += (x - meanX) ** 2 })
  const rise = (covariance / variance) * (n - 1)
  const growthPercent = meanY === 0 ? (rise > 0 ? Infinity : 0) : (100 * rise) / meanY
  return { name: series.name, flat: growthPercent < tolerancePercent, growthPercent: Math.round(growthPercent * 10) / 10, first, last }
}

/**
 * Flat once levelled: the mean of the run's last third rises by less than `tolerancePercent`
 * over the mean of its middle third. For a figure that is a high-water mark, such as a churned
 * table's index, which keeps the most entries it held between two vacuums: it steps up when the
 * gap between two vacuums is the longest yet (a stalled host), and stays level between those
 * records, which come ever more rarely. A trend line over such a series rises with any step
 * after the warm-up, however level it has been since; a leak still rises in the last third.
 */
export function judgePlateau (series: Series, tolerancePercent: number): Verdict {
  const n = series.values.length
  const first = series.values[0] ?? 0
  const last = series.values.at(-1) ?? 0
  if (n < 3) return { name: series.name, flat: true, growthPercent: 0, first, last }
  const mean = (vs: number[]) => vs.reduce((sum, v) => sum + v, 0) / vs.length
  const middle = mean(series.values.slice(Math.floor(n / 3), Math.floor((2 * n) / 3)))
  const tail = mean(series.values.slice(Math.floor((2 * n) / 3)))
  const growthPercent = middle === 0 ? (tail > 0 ? Infinity : 0) : (100 * (tail - middle)) / middle
  return { name: series.name, flat: growthPercent < tolerancePercent, growthPercent: Math.round(growthPercent * 10) / 10, first, last }
}
