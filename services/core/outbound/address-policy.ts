import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { isIP, type LookupFunction } from 'node:net'
import ipaddr from 'ipaddr.js'
import { OutboundError } from './outbound-error.ts'

// Every request Tasklane makes on a user's behalf (the `http` type, webhook executors,
// notifications) goes to a URL a tenant chose, so by default it may reach public unicast
// addresses only: loopback, private, link-local (cloud metadata), CGNAT and the like are
// refused. The check runs on the addresses DNS answers, inside the socket's own lookup, so
// what is checked is what is connected to (no gap for DNS rebinding).

type Range = [ipaddr.IPv4 | ipaddr.IPv6, number]
export type AllowedHosts = { names: string[], ranges: Range[] }

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

/**
 * TASKLANE_WEBHOOK_ALLOWED_HOSTS: comma-separated host names (`billing.internal`, or
 * `.svc.cluster.local` for every name under it) and CIDR ranges (`10.0.0.0/8`, `fd00::/8`;
 * a bare address is a range of one). Throws on an item that is neither.
 */
export function parseAllowedHosts (raw: string): AllowedHosts {
  const allowed: AllowedHosts = { names: [], ranges: [] }
  for (const item of raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if (item.includes('/')) {
      try { allowed.ranges.push(normalRange(ipaddr.parseCIDR(item))) } catch { throw new Error(`"${item}" is not a CIDR range`) }
    } else if (ipaddr.isValid(item)) {
      const address = ipaddr.process(item)
      allowed.ranges.push([address, address.kind() === 'ipv4' ? 32 : 128])
    } else if (/^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(item)) {
      allowed.names.push(item)
    } else {
      throw new Error(`"${item}" is neither a host name nor a CIDR range`)
    }
  }
  return allowed
}

// An IPv4-mapped IPv6 range would never match the IPv4 addresses ipaddr.process gives back.
function normalRange ([address, bits]: Range): Range {
  if (address.kind() === 'ipv6' && (address as ipaddr.IPv6).isIPv4MappedAddress() && bits >= 96) {
    return [(address as ipaddr.IPv6).toIPv4Address(), bits - 96]
  }
  return [address, bits]
}

export type AddressPolicy = {
  /** Whether a connection to `address`, found for `host`, is allowed. */
  permits: (host: string, address: string) => boolean
  /** Throws FORBIDDEN_ADDRESS for a URL whose host is a refused IP literal (no DNS lookup happens for it). */
  checkLiteral: (hostname: string) => void
  /** A socket lookup that refuses any answer the policy does not permit. */
  lookup: LookupFunction | undefined
}

export function refusedAddress (host: string, address: string): OutboundError {
  return new OutboundError(`refused to connect to ${host} (${address}): not a public address`, 'FORBIDDEN_ADDRESS', false)
}

export function createAddressPolicy (options: { allowPrivate: boolean, allowed?: AllowedHosts }): AddressPolicy {
  const allowed = options.allowed ?? { names: [], ranges: [] }
  const nameAllowed = (host: string): boolean => {
    const name = host.toLowerCase().replace(/\.$/, '')
    return allowed.names.some((n) => (n.startsWith('.') ? name.endsWith(n) || name === n.slice(1) : name === n))
  }
  const inRange = (address: string): boolean => {
    if (!ipaddr.isValid(address)) return false
    const parsed = ipaddr.process(address)
    return allowed.ranges.some(([base, bits]) => base.kind() === parsed.kind() && parsed.match(base as never, bits))
  }
  const permits = (host: string, address: string): boolean =>
    options.allowPrivate || isPublicAddress(address) || nameAllowed(host) || inRange(address)

  const lookup: LookupFunction = (hostname, lookupOptions, callback) => {
    dnsLookup(hostname, { ...lookupOptions, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0)
      const bad = addresses.find((a) => !permits(hostname, a.address))
      if (bad) return callback(refusedAddress(hostname, bad.address) as unknown as NodeJS.ErrnoException, '', 0)
      if (lookupOptions.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, addresses)
      const first = addresses[0]!
      return callback(null, first.address, first.family)
    })
  }

  return {
    permits,
    checkLiteral (hostname) {
      const host = hostname.replace(/^\[|\]$/g, '')
      if (isIP(host) && !permits(host, host)) throw refusedAddress(host, host)
    },
    lookup: options.allowPrivate ? undefined : lookup,
  }
}
