/**
 * @module
 * The delivery-time half of the egress policy: before a POST, the worker asks whether the subscription's URL may
 * be reached. Under `public` an IP literal is judged as it is; a name is resolved (A and AAAA, bounded) and every
 * address it has must be public, so a public-looking name that points at 10.0.0.5 is refused. A name that does not
 * resolve is refused too: fetch would resolve it on its own and might get an answer this check never saw.
 *
 * Not closed: DNS rebinding. fetch resolves the name again after this check, so a hostile resolver answering a
 * public address here and a private one a moment later wins the race (README, "Egress policy").
 */
import {
  addressClassOf,
  EGRESS_VARIABLE,
  hostRefusalOf,
  literalAddressOf,
  type WebhookEgress,
} from "./egress_policy.ts";

/** Resolves a host name to its addresses (IPv4 and IPv6); rejects when it cannot tell. */
export type ResolveHost = (hostname: string, signal: AbortSignal) => Promise<readonly string[]>;

/** The part of `Deno.resolveDns` the resolver uses, so tests can stand in for DNS. */
export type ResolveDns = (
  query: string,
  recordType: "A" | "AAAA",
  options: { signal: AbortSignal },
) => Promise<string[]>;

/** Bound on resolving a destination (both queries, in parallel). */
export const RESOLVE_TIMEOUT_MS_DEFAULT = 5_000;

/**
 * A {@linkcode ResolveHost} over DNS: A and AAAA in parallel. A name with no record of one type is fine; a name
 * with none at all, or a query that fails another way (timeout, SERVFAIL), rejects: an address this check did
 * not see could be the one fetch connects to.
 */
export function dnsResolver(resolveDns: ResolveDns = Deno.resolveDns): ResolveHost {
  return async (hostname, signal) => {
    const answers = await Promise.allSettled(
      (["A", "AAAA"] as const).map((type) => resolveDns(hostname, type, { signal })),
    );
    const addresses: string[] = [];
    for (const answer of answers) {
      if (answer.status === "fulfilled") addresses.push(...answer.value);
      else if (!(answer.reason instanceof Deno.errors.NotFound)) throw answer.reason;
    }
    if (addresses.length === 0) throw new Deno.errors.NotFound(`No A or AAAA record for "${hostname}"`);
    return addresses;
  };
}

export interface DestinationCheckOptions {
  readonly egress: WebhookEgress;
  /** @default DNS (A and AAAA) through `Deno.resolveDns` */
  readonly resolveHost?: ResolveHost;
  /** @default 5000 */
  readonly resolveTimeoutMs?: number;
}

/**
 * Why a delivery to `url` must not be sent under the policy, as a sentence for the attempt row, or undefined when
 * it may be sent. Never throws: a failure to resolve is a refusal.
 */
export async function destinationRefusalOf(url: string, options: DestinationCheckOptions): Promise<string | undefined> {
  if (options.egress === "any") return undefined;
  const refused = (reason: string) => `Not sent: ${reason}; ${EGRESS_VARIABLE}=${options.egress} refuses it`;
  if (!URL.canParse(url)) return refused(`destination "${url.slice(0, 100)}" is not a URL`);
  const { hostname } = new URL(url);
  const literalRefusal = hostRefusalOf(hostname, options.egress);
  if (literalRefusal) return refused(`destination ${literalRefusal}`);
  // An IP literal was judged above: there is nothing to resolve.
  if (literalAddressOf(hostname) !== undefined) return undefined;
  const timeoutMs = options.resolveTimeoutMs ?? RESOLVE_TIMEOUT_MS_DEFAULT;
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let addresses: readonly string[];
  try {
    // The race bounds a resolver that ignores its signal too; the timer is cleared so nothing outlives the check.
    addresses = await Promise.race([
      (options.resolveHost ?? dnsResolver())(hostname, controller.signal),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          controller.abort();
          reject(new DOMException(`No answer within ${timeoutMs} ms`, "TimeoutError"));
        }, timeoutMs);
      }),
    ]);
  } catch (error) {
    const why = controller.signal.aborted
      ? `did not resolve within ${timeoutMs} ms`
      : error instanceof Deno.errors.NotFound
      ? "does not resolve"
      : `could not be resolved (${error instanceof Error ? error.message : String(error)})`;
    return refused(`destination "${hostname}" ${why}`);
  } finally {
    clearTimeout(timer);
  }
  for (const address of addresses) {
    let kind: string;
    try {
      kind = addressClassOf(address);
    } catch {
      kind = "not an IP address";
    }
    if (kind !== "public") {
      return refused(`destination "${hostname}" resolves to a non-public address ${address} (${kind})`);
    }
  }
  return undefined;
}
