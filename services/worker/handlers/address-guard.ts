import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import ipaddr from 'ipaddr.js'
import { PermanentTaskError } from '../task-handler.ts'

/** Public unicast only: loopback, private, link-local (cloud metadata), CGNAT and the like are refused. */
export function isPublicAddress (address: string): boolean {
  if (!ipaddr.isValid(address)) return false
  return ipaddr.process(address).range() === 'unicast'
}

export function refusedAddress (host: string, address: string): PermanentTaskError {
  return new PermanentTaskError(`refused to connect to ${host} (${address}): not a public address`, 'FORBIDDEN_ADDRESS')
}

/** Checks an IP literal in a URL before connecting, since no DNS lookup happens for it. */
export function assertPublicLiteral (hostname: string): void {
  const host = hostname.replace(/^\[|\]$/g, '')
  if (isIP(host) && !isPublicAddress(host)) throw refusedAddress(host, host)
}

/**
 * A DNS lookup for sockets that refuses non-public answers, so the check applies to the
 * address actually connected to (no time-of-check/time-of-use gap with DNS rebinding).
 */
export const publicOnlyLookup: LookupFunction = (hostname, options, callback) => {
  dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
    if (err) return callback(err, '', 0)
    const bad = addresses.find((a) => !isPublicAddress(a.address))
    if (bad) return callback(refusedAddress(hostname, bad.address) as unknown as NodeJS.ErrnoException, '', 0)
    if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses)
    const first = addresses[0]!
    return callback(null, first.address, first.family)
  })
}
