/**
 * @module
 * Where partner webhooks may be delivered (`BV_WEBHOOK_EGRESS`). Under `public` a destination must be a public
 * unicast address, so a partner cannot aim signed deliveries at this platform's own services, the cloud metadata
 * endpoint (169.254.169.254) or anything else on the private network (SSRF). `any` allows every address: local
 * development, where partner receivers listen on loopback. Pure and synchronous: resolving a name is
 * `destination_check.ts`'s job. The ranges are ipaddr.js's tables of the IANA special-purpose registries.
 */
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export const WEBHOOK_EGRESS_MODES = ["public", "any"] as const;
export type WebhookEgress = (typeof WEBHOOK_EGRESS_MODES)[number];

/** The variable that sets the policy: every refusal names it, so an operator knows what decided. */
export const EGRESS_VARIABLE = "BV_WEBHOOK_EGRESS";

/**
 * IANA's global unicast block. Everything else in IPv6 is special-purpose or unallocated, including the
 * deprecated IPv4-compatible `::a.b.c.d` that ipaddr.js still calls "unicast".
 */
const GLOBAL_UNICAST_V6 = ipaddr.parseCIDR("2000::/3");

/**
 * `"public"` for a public unicast address; otherwise the name of the special-purpose range it is in
 * (`"loopback"`, `"private"`, `"linkLocal"`, `"carrierGradeNat"`, `"uniqueLocal"`, `"unspecified"`, `"multicast"`,
 * `"broadcast"`, `"reserved"`, …). An IPv4-mapped IPv6 address (`::ffff:127.0.0.1`) is judged as its IPv4 address.
 * NAT64, 6to4 and Teredo addresses embed an IPv4 address a gateway may translate to anything: they are not public.
 */
export function addressClassOf(address: string): string {
  // node:net's check is strict dotted decimal: "0177.1" (octal) must not be read one way here and another by fetch.
  const version = isIP(address);
  if (version === 0) throw new TypeError(`Not an IP address: "${address}"`);
  // IPv6 text goes through the URL host parser fetch uses: ipaddr.js reads "::8.8.8.8" as IPv4-mapped
  // (::ffff:808:808), where fetch dials the IPv4-compatible ::808:808.
  const ip = ipaddr.process(version === 6 ? canonicalIpv6Of(address) : address);
  const range = ip.range();
  if (range !== "unicast") return range;
  if (ip.kind() === "ipv6" && !ip.match(GLOBAL_UNICAST_V6)) return "reserved";
  return "public";
}

/** `address` (IPv6) as the WHATWG URL parser writes it. */
function canonicalIpv6Of(address: string): string {
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    // A zone id ("fe80::1%eth0") is valid for node:net but never part of a URL: not a webhook destination.
    throw new TypeError(`Not an IP address a URL can hold: "${address}"`);
  }
}

/** The address of a URL host that is an IP literal (`new URL(…).hostname`, brackets and all), else undefined. */
export function literalAddressOf(hostname: string): string | undefined {
  const host = hostname.startsWith("[") && hostname.endsWith("]") ? hostname.slice(1, -1) : hostname;
  return isIP(host) === 0 ? undefined : host;
}

/** `localhost` and its subdomains (RFC 6761: always loopback, whatever a resolver says), with or without the root dot. */
function isLoopbackName(hostname: string): boolean {
  const name = hostname.toLowerCase().replace(/\.$/, "");
  return name === "localhost" || name.endsWith(".localhost");
}

/**
 * Why a URL host (`new URL(…).hostname`) may not be a destination under `egress`, as a sentence fragment, or
 * undefined when it may. Only what the host itself says is judged (an IP literal, a `localhost` name): other
 * names are resolved at delivery, never here, because their addresses can change after the check.
 */
export function hostRefusalOf(hostname: string, egress: WebhookEgress): string | undefined {
  if (egress === "any") return undefined;
  if (isLoopbackName(hostname)) return `"${hostname}" is a loopback name`;
  const address = literalAddressOf(hostname);
  if (address === undefined) return undefined;
  const kind = addressClassOf(address);
  return kind === "public" ? undefined : `${address} is a non-public address (${kind})`;
}
