import dns from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import ipaddr from 'ipaddr.js';
import type { Agent } from 'undici';
import { NonRetryableError } from './NonRetryableError.js';

/** A connection the SSRF guard refused; never worth retrying. */
export class RefusedAddressError extends NonRetryableError {
  constructor(message: string) {
    super(message);
    this.name = 'RefusedAddressError';
  }
}

type Cidr = [ipaddr.IPv4 | ipaddr.IPv6, number];

/**
 * Which addresses HTTP tasks may connect to. Only ordinary public unicast addresses are allowed by
 * default: ipaddr.js classifies every special range (loopback, RFC 1918 private, link-local — where
 * cloud metadata services live, 169.254.169.254 and fd00:ec2::254 —, unique-local, carrier-grade NAT,
 * unspecified, multicast, broadcast, reserved, and IPv6 forms that embed an IPv4 address such as
 * 6to4 and NAT64), so anything that is not plain `unicast` is refused. An allowlist of address ranges
 * is easier to get right than a denylist: a range nobody thought of is refused, not allowed.
 *
 * `HTTP_ALLOW_HOSTS` opens exceptions: a host name (`api.internal`), a suffix (`*.internal`), an IP
 * address or a CIDR range (`10.0.0.0/8`). Names match the URL's host; addresses and ranges match the
 * address actually connected to.
 */
export class HostPolicy {
  private constructor(
    private readonly names: Set<string>,
    private readonly suffixes: string[],
    private readonly ranges: Cidr[],
  ) {}

  /** Parses HTTP_ALLOW_HOSTS entries; throws on an entry that is neither a name nor an address or range. */
  static parse(entries: readonly string[]): HostPolicy {
    const names = new Set<string>();
    const suffixes: string[] = [];
    const ranges: Cidr[] = [];
    for (const raw of entries) {
      const entry = raw
        .trim()
        .toLowerCase()
        .replace(/^\[(.*)\]$/, '$1');
      if (!entry) continue;
      if (entry.includes('/')) {
        if (!ipaddr.isValidCIDR(entry)) throw new Error(`"${raw}" is not a valid CIDR range`);
        const [address, bits] = ipaddr.parseCIDR(entry);
        ranges.push([address, bits]);
      } else if (ipaddr.isValid(entry)) {
        const address = ipaddr.process(entry);
        ranges.push([address, address.kind() === 'ipv4' ? 32 : 128]);
      } else if (entry.startsWith('*.') && /^[a-z0-9_-]+(\.[a-z0-9_-]+)*$/.test(entry.slice(2))) {
        suffixes.push(entry.slice(1));
      } else if (/^[a-z0-9_-]+(\.[a-z0-9_-]+)*\.?$/.test(entry)) {
        names.add(entry.replace(/\.$/, ''));
      } else {
        throw new Error(`"${raw}" is not a host name, IP address or CIDR range`);
      }
    }
    return new HostPolicy(names, suffixes, ranges);
  }

  /** Whether the URL host `hostname` is allowed by name, whatever it resolves to. */
  allowsName(hostname: string): boolean {
    const name = normalizeHost(hostname).replace(/\.$/, '');
    return this.names.has(name) || this.suffixes.some((suffix) => name.endsWith(suffix));
  }

  /** Why connecting to `address` for the URL host `hostname` is refused, or undefined when it is allowed. */
  refusal(hostname: string, address: string): string | undefined {
    if (this.allowsName(hostname)) return undefined;
    if (!ipaddr.isValid(address)) return `${address} is not an IP address`;
    const ip = ipaddr.process(address);
    if (this.ranges.some(([range, bits]) => range.kind() === ip.kind() && ip.match(range, bits))) return undefined;
    const kind = ip.range();
    if (kind === 'unicast') return undefined;
    const host = normalizeHost(hostname);
    return `${host === address ? address : `${host} resolves to ${address}, which`} is a ${kind} address; HTTP tasks may not reach it unless HTTP_ALLOW_HOSTS allows it`;
  }

  /**
   * A `dns.lookup` replacement for sockets: resolves, drops the addresses the policy refuses, and
   * hands the socket only addresses that were checked, so the connection cannot go to a second,
   * different resolution (DNS rebinding). Fails when no resolved address is allowed.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dns.lookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, '', 0);
      const list = addresses as dns.LookupAddress[];
      const allowed = list.filter((a) => this.refusal(hostname, a.address) === undefined);
      if (allowed.length === 0) {
        const reason = (list[0] && this.refusal(hostname, list[0].address)) ?? `${hostname} did not resolve`;
        return callback(new RefusedAddressError(reason), '', 0);
      }
      if (options.all) (callback as unknown as (e: null, a: dns.LookupAddress[]) => void)(null, allowed);
      else callback(null, allowed[0]!.address, allowed[0]!.family);
    });
  };

  /**
   * An undici dispatcher whose every connection is checked: IP-literal hosts here (sockets do not look
   * them up), names through `lookup`. Redirects, retries and pooled connections all pass through it.
   */
  async createDispatcher(options: { connectTimeoutMs?: number } = {}): Promise<Agent> {
    const { Agent, buildConnector } = await import('undici');
    const connect = buildConnector({ lookup: this.lookup, timeout: options.connectTimeoutMs ?? 10_000 });
    return new Agent({
      connect: (opts, callback) => {
        const host = normalizeHost(opts.hostname);
        if (isIP(host)) {
          const reason = this.refusal(host, host);
          if (reason) return callback(new RefusedAddressError(reason), null);
        }
        connect(opts, callback);
      },
    });
  }
}

function normalizeHost(hostname: string): string {
  return hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1');
}
