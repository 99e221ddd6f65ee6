/**
 * @module
 * The address a login attempt counts against. A region's services sit behind two hops of the platform: the edge
 * appends the client's address to `X-Forwarded-For`, then the region's ingress appends its own peer (the edge) and
 * connects to the service over loopback. So the client is the right-most address in the chain that is not one of our
 * hops, and our hops run on loopback or a private network: entries in those ranges are passed over, a public one is
 * the client. What a client writes into the header itself sits left of the addresses our hops appended, so it is never
 * reached while a public address stands to its right.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

/** The client's address of a request (`env` is what `Deno.serve` hands the app), or undefined when unknown. */
export type ClientAddressOf = (request: Request, env: unknown) => string | undefined;

/**
 * `X-Forwarded-For` entries read, from the right: our chain appends two; a longer one is mostly what a client wrote,
 * and a bound keeps a header of thousands of entries from costing a parse each.
 */
const FORWARDED_ENTRIES_MAX = 8;

/** ipaddr.js ranges our hops (edge, ingress) connect from: loopback on one host, else a private network. */
const PROXY_RANGES: ReadonlySet<string> = new Set(["loopback", "private", "uniqueLocal"]);

/**
 * The default {@linkcode ClientAddressOf}: the connecting peer when it is public; when it is one of our hops (or
 * unknown: an in-process caller such as `app.request`), the right-most `X-Forwarded-For` entry that is not. When
 * every entry is a hop (everything on one machine), the left-most. An entry that is not an IP address ends the walk:
 * the hop that passed it on is taken instead. IPv6 addresses count per /64 (one subscriber's usual allocation), and
 * an IPv4-mapped IPv6 address as its IPv4 address.
 */
export const forwardedClientAddressOf: ClientAddressOf = (request, env) => {
  const peer = parseAddress(peerAddressOf(env));
  if (peer !== undefined && !isProxy(peer)) return keyOf(peer);
  let client = peer;
  const entries = (request.headers.get("x-forwarded-for") ?? "").split(",").slice(-FORWARDED_ENTRIES_MAX);
  for (let i = entries.length - 1; i >= 0; i--) {
    const address = parseAddress(entries[i].trim());
    if (address === undefined) break;
    client = address;
    if (!isProxy(address)) break;
  }
  return client === undefined ? undefined : keyOf(client);
};

/** The peer's address from what `Deno.serve` hands the app as its env (`ServeHandlerInfo`); none in `app.request`. */
function peerAddressOf(env: unknown): string | undefined {
  const hostname = (env as { remoteAddr?: { hostname?: unknown } } | undefined)?.remoteAddr?.hostname;
  return typeof hostname === "string" ? hostname : undefined;
}

function parseAddress(text: string | undefined): ipaddr.IPv4 | ipaddr.IPv6 | undefined {
  // node:net's check is strict: "0177.1" or "1" (which ipaddr.js and URL parsers read as IPv4) are not addresses.
  if (text === undefined || isIP(text) === 0) return undefined;
  try {
    return ipaddr.process(text);
  } catch {
    return undefined;
  }
}

function isProxy(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  return PROXY_RANGES.has(address.range());
}

function keyOf(address: ipaddr.IPv4 | ipaddr.IPv6): string {
  if (address.kind() === "ipv4") return address.toString();
  const prefix = (address as ipaddr.IPv6).parts.slice(0, 4).map((part) => part.toString(16));
  return `${prefix.join(":")}::/64`;
}
