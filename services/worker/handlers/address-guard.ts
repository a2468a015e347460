import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import ipaddr from 'ipaddr.js'
import { PermanentTaskError } from '../task-handler.ts'

/**
 * Public unicast only: loopback, private, link-local (cloud metadata), CGNAT and the like are
 * refused. An IPv6 address that carries an IPv4 address (IPv4-compatible ::a.b.c.d, mapped
 * ::ffff:a.b.c.d, translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo
 * 2001::/32) is judged by the IPv4 address it reaches, so ::127.0.0.1 is loopback.
 */
export function isPublicAddress (address: string): boolean {
  if (!ipaddr.isValid(address)) return false
  const parsed = ipaddr.parse(address)
  if (parsed.kind() === 'ipv4') return parsed.range() === 'unicast'
  const embedded = embeddedIpv4(parsed as ipaddr.IPv6)
  if (embedded) return embedded.every((v4) => v4.range() === 'unicast')
  return parsed.range() === 'unicast'
}

const v4 = (high: number, low: number): ipaddr.IPv4 =>
  new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff])

/** The IPv4 addresses an IPv6 address embeds, or undefined when it embeds none. */
function embeddedIpv4 (address: ipaddr.IPv6): ipaddr.IPv4[] | undefined {
  const p = address.parts
  const zeros = (from: number, to: number) => p.slice(from, to).every((x) => x === 0)
  // ::a.b.c.d (not :: nor ::1), ::ffff:a.b.c.d and ::ffff:0:a.b.c.d
  if (zeros(0, 6) && (p[6] !== 0 || p[7]! > 1)) return [v4(p[6]!, p[7]!)]
  if (zeros(0, 5) && p[5] === 0xffff) return [v4(p[6]!, p[7]!)]
  if (zeros(0, 4) && p[4] === 0xffff && p[5] === 0) return [v4(p[6]!, p[7]!)]
  // NAT64, the well-known prefix; the local-use prefix 64:ff9b:1::/48 is refused by range.
  if (p[0] === 0x64 && p[1] === 0xff9b && zeros(2, 6)) return [v4(p[6]!, p[7]!)]
  if (p[0] === 0x2002) return [v4(p[1]!, p[2]!)]
  // Teredo: the server at bits 32-63, the client's address inverted in the last 32 bits.
  if (p[0] === 0x2001 && p[1] === 0) return [v4(p[2]!, p[3]!), v4(p[6]! ^ 0xffff, p[7]! ^ 0xffff)]
  return undefined
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
