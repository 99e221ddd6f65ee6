/**
 * @module
 * The address a login attempt counts against. A region's services sit behind two hops of the platform: the edge
 * appends the client's address to `X-Forwarded-For`, then the region's ingress appends its own peer (the edge) and
 * connects to the service over loopback. So the client is the right-most address in the chain that is not one of our
 * hops: entries inside the trusted proxy ranges (where our hops run: by default loopback, private and unique-local
 * networks, carrier-grade NAT and link-local; `BV_TRUSTED_PROXIES`) are passed over, any other one is the client. What
 * a client writes into the header itself sits left of the addresses our hops appended, so it is never reached while an
 * untrusted address stands to its right.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { TRUSTED_PROXIES_DEFAULT, TRUSTED_PROXIES_MAX } from "../../../shared/config/config.ts";

/** The client's address of a request (`env` is what `Deno.serve` hands the app), or undefined when unknown. */
export type ClientAddressOf = (request: Request, env: unknown) => string | undefined;

/**
 * Where the platform's hops run unless told otherwise: loopback, private and unique-local networks, carrier-grade NAT
 * (RFC 6598, which overlay networks use) and link-local — the default of `BV_TRUSTED_PROXIES`, defined once in the
 * config.
 */
export const DEFAULT_TRUSTED_PROXIES: readonly string[] = TRUSTED_PROXIES_DEFAULT;

export interface ClientAddressOptions {
  /**
   * The proxies whose `X-Forwarded-For` entries are passed over: CIDRs, or single addresses (a /32 or /128), with no
   * host bits set, at most {@linkcode TRUSTED_PROXIES_MAX}. List an edge's public address when it reaches the ingress
   * from one, or every client behind that edge counts as the edge.
   * @default {DEFAULT_TRUSTED_PROXIES}
   */
  readonly trustedProxies?: readonly string[];
}

/** Each range costs a comparison per `X-Forwarded-For` entry read. */
export { TRUSTED_PROXIES_MAX };

/**
 * `X-Forwarded-For` entries read, from the right: our chain appends two; a longer one is mostly what a client wrote,
 * and a bound keeps a header of thousands of entries from costing a parse each.
 */
const FORWARDED_ENTRIES_MAX = 8;

type Address = ipaddr.IPv4 | ipaddr.IPv6;
type Range = readonly [Address, number];

/**
 * Makes a {@linkcode ClientAddressOf}: the connecting peer when it is not a trusted proxy; when it is (or is unknown:
 * an in-process caller such as `app.request`), the right-most `X-Forwarded-For` entry that is not. When every entry is
 * trusted (everything on one machine), the left-most. An entry that is not an IP address ends the walk: the hop that
 * passed it on is taken instead. IPv6 addresses count per /64 (one subscriber's usual allocation), and an IPv4-mapped
 * IPv6 address as its IPv4 address. Throws a TypeError naming the first malformed range, a RangeError for too many.
 */
export function createClientAddressOf(options?: ClientAddressOptions): ClientAddressOf {
  const texts = options?.trustedProxies ?? DEFAULT_TRUSTED_PROXIES;
  if (texts.length > TRUSTED_PROXIES_MAX) {
    throw new RangeError(`trustedProxies must list at most ${TRUSTED_PROXIES_MAX} ranges, got ${texts.length}`);
  }
  const ranges = texts.map(rangeOf);
  const isTrusted = (address: Address) =>
    ranges.some(([network, bits]) => network.kind() === address.kind() && address.match(network, bits));

  return (request, env) => {
    const peer = parseAddress(peerAddressOf(env));
    if (peer !== undefined && !isTrusted(peer)) return keyOf(peer);
    let client = peer;
    const entries = (request.headers.get("x-forwarded-for") ?? "").split(",").slice(-FORWARDED_ENTRIES_MAX);
    for (let i = entries.length - 1; i >= 0; i--) {
      const address = parseAddress(entries[i].trim());
      if (address === undefined) break;
      client = address;
      if (!isTrusted(address)) break;
    }
    return client === undefined ? undefined : keyOf(client);
  };
}

/** The default {@linkcode ClientAddressOf}: {@linkcode createClientAddressOf} with the default trusted proxies. */
export const forwardedClientAddressOf: ClientAddressOf = createClientAddressOf();

/**
 * True when a {@linkcode ClientAddressOf} result is loopback: 127.0.0.0/8, or the /64 that holds ::1 (the whole
 * ::/64 is reserved, never a public client's). Such a result means the request started on this machine: the walk
 * stops at a public client's own address before any entry left of it, so only a client connecting from a trusted
 * range could name loopback, and such a client can name any address it likes already.
 */
export function isLoopbackClientAddress(address: string): boolean {
  return address === LOOPBACK_IPV6_KEY || (isIP(address) === 4 && ipaddr.IPv4.parse(address).range() === "loopback");
}

/** A trusted range from its text, strictly: a range that silently matched nothing (or too much) would go unnoticed. */
function rangeOf(text: string): Range {
  const [addressText, prefixText, extra] = text.trim().split("/");
  const version = isIP(addressText);
  const bitsMax = version === 4 ? 32 : 128;
  const bits = prefixText === undefined ? bitsMax : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
  if (version === 0 || extra !== undefined || addressText.includes("%") || !(bits <= bitsMax)) {
    throw new TypeError(
      `trustedProxies entry "${text}" must be a CIDR or an IP address (e.g. 10.0.0.0/8, fd00::/8, 203.0.113.7)`,
    );
  }
  const network = ipaddr.parse(addressText);
  // Addresses are compared after ipaddr.process, which turns IPv4-mapped IPv6 into IPv4: such a range never matches.
  if (network.kind() === "ipv6" && (network as ipaddr.IPv6).isIPv4MappedAddress()) {
    throw new TypeError(`trustedProxies entry "${text}" is IPv4-mapped IPv6; write the range as IPv4`);
  }
  const cidr = `${addressText}/${bits}`;
  const start = version === 4 ? ipaddr.IPv4.networkAddressFromCIDR(cidr) : ipaddr.IPv6.networkAddressFromCIDR(cidr);
  if (start.toString() !== network.toString()) {
    throw new TypeError(`trustedProxies entry "${text}" has host bits set; write ${start}/${bits}`);
  }
  return [network, bits];
}

/** The peer's address from what `Deno.serve` hands the app as its env (`ServeHandlerInfo`); none in `app.request`. */
function peerAddressOf(env: unknown): string | undefined {
  const hostname = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr?.hostname;
  return typeof hostname === "string" ? hostname : undefined;
}

function parseAddress(text: string | undefined): Address | undefined {
  // node:net's check is strict: "0177.1" or "1" (which ipaddr.js and URL parsers read as IPv4) are not addresses.
  if (text === undefined || isIP(text) === 0) return undefined;
  try {
    return ipaddr.process(text);
  } catch {
    return undefined;
  }
}

function keyOf(address: Address): string {
  if (address.kind() === "ipv4") return address.toString();
  const prefix = (address as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${prefix.join(":")}::/64`;
}

const LOOPBACK_IPV6_KEY = keyOf(ipaddr.parse("::1"));
