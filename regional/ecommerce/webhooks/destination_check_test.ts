/**
 * The delivery-time egress check with DNS stood in for: names are judged by every address they resolve to, a
 * name that does not resolve (or not in time) is refused, IP literals and `any` never touch DNS.
 */
import assert from "node:assert/strict";
import { destinationRefusalOf, dnsResolver, type ResolveDns, type ResolveHost } from "./destination_check.ts";

/** A resolver answering from `records`, counting its calls; an unknown name is NXDOMAIN. */
function fakeResolver(records: Record<string, readonly string[]>): ResolveHost & { calls: string[] } {
  const calls: string[] = [];
  const resolve = (hostname: string) => {
    calls.push(hostname);
    const addresses = records[hostname];
    return addresses ? Promise.resolve(addresses) : Promise.reject(new Deno.errors.NotFound("no records found"));
  };
  return Object.assign(resolve, { calls });
}

Deno.test("under public a name is refused when any address it resolves to is non-public", async () => {
  const resolveHost = fakeResolver({
    "hooks.partner.example": ["93.184.216.34", "2606:4700::1111"],
    "sneaky.partner.example": ["93.184.216.34", "10.0.0.5"],
    "metadata.partner.example": ["169.254.169.254"],
    "six.partner.example": ["::1"],
  });
  const check = (url: string) => destinationRefusalOf(url, { egress: "public", resolveHost });
  assert.equal(await check("https://hooks.partner.example/bv"), undefined);
  assert.equal(
    await check("https://sneaky.partner.example/bv"),
    'Not sent: destination "sneaky.partner.example" resolves to a non-public address 10.0.0.5 (private); ' +
      "BV_WEBHOOK_EGRESS=public refuses it",
  );
  assert.match(
    (await check("http://metadata.partner.example/"))!,
    /non-public address 169\.254\.169\.254 \(linkLocal\)/,
  );
  assert.match((await check("http://six.partner.example/"))!, /non-public address ::1 \(loopback\)/);
  assert.match((await check("http://gone.partner.example/"))!, /"gone\.partner\.example" does not resolve/);
});

Deno.test("under public IP literals and localhost names are judged without DNS; under any nothing is checked", async () => {
  const resolveHost = fakeResolver({});
  const check = (url: string, egress: "public" | "any" = "public") =>
    destinationRefusalOf(url, { egress, resolveHost });
  assert.match((await check("http://127.0.0.1:8110/api"))!, /^Not sent: destination 127\.0\.0\.1 is a non-public/);
  assert.match((await check("http://[::ffff:10.0.0.5]/"))!, /\(private\)/);
  assert.match((await check("http://localhost:8080/"))!, /"localhost" is a loopback name/);
  assert.equal(await check("http://93.184.216.34/hooks"), undefined);
  assert.equal(await check("http://127.0.0.1:8110/api", "any"), undefined);
  assert.equal(await check("http://unresolvable.partner.example/", "any"), undefined);
  assert.deepEqual(resolveHost.calls, [], "DNS is never asked");
});

Deno.test("under public a resolver that does not answer in time is a refusal, bounded by resolveTimeoutMs", async () => {
  const hanging: ResolveHost = () => new Promise(() => {});
  const started = performance.now();
  const refusal = await destinationRefusalOf("https://slow.partner.example/", {
    egress: "public",
    resolveHost: hanging,
    resolveTimeoutMs: 50,
  });
  assert.match(refusal!, /"slow\.partner\.example" did not resolve within 50 ms/);
  assert.ok(performance.now() - started < 2_000);
  const failing: ResolveHost = () => Promise.reject(new Error("SERVFAIL"));
  assert.match(
    (await destinationRefusalOf("https://broken.partner.example/", { egress: "public", resolveHost: failing }))!,
    /could not be resolved \(SERVFAIL\)/,
  );
});

Deno.test("dnsResolver() asks A and AAAA: one type missing is fine, none at all or another failure rejects", async () => {
  const fake = (answers: Record<"A" | "AAAA", string[] | Error>): ResolveDns => (_query, type) => {
    const answer = answers[type];
    return answer instanceof Error ? Promise.reject(answer) : Promise.resolve(answer);
  };
  const signal = new AbortController().signal;
  const notFound = () => new Deno.errors.NotFound("no records found");
  assert.deepEqual(await dnsResolver(fake({ A: ["93.184.216.34"], AAAA: notFound() }))("h", signal), [
    "93.184.216.34",
  ]);
  assert.deepEqual(await dnsResolver(fake({ A: ["93.184.216.34"], AAAA: ["::1"] }))("h", signal), [
    "93.184.216.34",
    "::1",
  ]);
  await assert.rejects(dnsResolver(fake({ A: notFound(), AAAA: notFound() }))("h", signal), Deno.errors.NotFound);
  // An AAAA answer this check did not see could be the address fetch connects to.
  await assert.rejects(
    dnsResolver(fake({ A: ["93.184.216.34"], AAAA: new Error("SERVFAIL") }))("h", signal),
    /SERVFAIL/,
  );
});
