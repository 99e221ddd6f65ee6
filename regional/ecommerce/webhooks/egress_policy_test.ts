/**
 * The egress policy's address classes, as a table (one row per kind of destination an SSRF aims at, and public
 * addresses that must stay allowed) and as properties over generated addresses.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { addressClassOf, hostRefusalOf, literalAddressOf } from "./egress_policy.ts";

const TABLE: readonly (readonly [address: string, expected: string])[] = [
  ["127.0.0.1", "loopback"],
  ["127.255.255.254", "loopback"],
  ["10.0.0.5", "private"],
  ["172.16.0.1", "private"],
  ["172.31.255.255", "private"],
  ["192.168.1.20", "private"],
  ["169.254.169.254", "linkLocal"],
  ["100.64.0.1", "carrierGradeNat"],
  ["100.127.255.255", "carrierGradeNat"],
  ["0.0.0.0", "unspecified"],
  ["0.1.2.3", "unspecified"],
  ["224.0.0.1", "multicast"],
  ["239.255.255.250", "multicast"],
  ["255.255.255.255", "broadcast"],
  ["192.0.2.1", "reserved"],
  ["198.51.100.7", "reserved"],
  ["203.0.113.9", "reserved"],
  ["198.18.0.1", "reserved"],
  ["240.0.0.1", "reserved"],
  ["::1", "loopback"],
  ["::", "unspecified"],
  ["fe80::1", "linkLocal"],
  ["fc00::1", "uniqueLocal"],
  ["fd12:3456::1", "uniqueLocal"],
  ["ff02::1", "multicast"],
  ["2001:db8::1", "reserved"],
  ["fec0::1", "deprecatedSiteLocal"],
  // IPv4-mapped forms are judged as their IPv4 address.
  ["::ffff:127.0.0.1", "loopback"],
  ["::ffff:7f00:1", "loopback"],
  ["::ffff:169.254.169.254", "linkLocal"],
  ["::ffff:10.0.0.5", "private"],
  // Forms that embed an IPv4 address some gateway or stack may translate: never public. "::a.b.c.d" is the
  // deprecated IPv4-compatible form (::7f00:1), not IPv4-mapped, whatever its IPv4 part.
  ["::7f00:1", "reserved"],
  ["::127.0.0.1", "reserved"],
  ["::8.8.8.8", "reserved"],
  ["64:ff9b::a00:5", "rfc6052"],
  ["2002:a00:5::1", "6to4"],
  ["2001::1", "teredo"],
  // Public unicast, including the neighbours of the private blocks.
  ["8.8.8.8", "public"],
  ["93.184.216.34", "public"],
  ["172.32.0.1", "public"],
  ["100.128.0.1", "public"],
  ["::ffff:8.8.8.8", "public"],
  ["2606:4700:4700::1111", "public"],
  ["2001:4860:4860::8888", "public"],
];

Deno.test("addressClassOf() names the range of each non-public destination and allows public v4 and v6", () => {
  for (const [address, expected] of TABLE) assert.equal(addressClassOf(address), expected, address);
});

Deno.test("addressClassOf() refuses what is not a canonical IP address rather than guessing", () => {
  for (const text of ["example.com", "0177.0.0.1", "127.1", "[::1]", "fe80::1%eth0", ""]) {
    assert.throws(() => addressClassOf(text), TypeError, text);
  }
});

/** A random address inside `base/prefixLength` (IPv4). */
function ipv4In(base: string, prefixLength: number): fc.Arbitrary<string> {
  const start = base.split(".").reduce((n, octet) => n * 256 + Number(octet), 0);
  return fc.integer({ min: 0, max: 2 ** (32 - prefixLength) - 1 }).map((offset) => {
    const n = start + offset;
    return [24, 16, 8, 0].map((shift) => Math.floor(n / 2 ** shift) % 256).join(".");
  });
}

Deno.test("every address of each private, loopback, link-local and CGNAT block is refused (property)", () => {
  for (
    const [base, prefixLength, expected] of [
      ["127.0.0.0", 8, "loopback"],
      ["10.0.0.0", 8, "private"],
      ["172.16.0.0", 12, "private"],
      ["192.168.0.0", 16, "private"],
      ["169.254.0.0", 16, "linkLocal"],
      ["100.64.0.0", 10, "carrierGradeNat"],
    ] as const
  ) {
    fc.assert(fc.property(ipv4In(base, prefixLength), (address) => {
      assert.equal(addressClassOf(address), expected, address);
      assert.equal(addressClassOf(`::ffff:${address}`), expected, `::ffff:${address}`);
    }));
  }
});

Deno.test("an IPv4-mapped IPv6 address gets the verdict of its IPv4 address (property)", () => {
  fc.assert(fc.property(fc.ipV4(), (address) => {
    assert.equal(addressClassOf(`::ffff:${address}`), addressClassOf(address));
  }));
});

Deno.test("a public IPv6 address is always global unicast (2000::/3), and fe80::/10, fc00::/7 never are (property)", () => {
  fc.assert(fc.property(fc.ipV6(), (address) => {
    if (addressClassOf(address) !== "public") return;
    const first = parseInt(address.split(":")[0] || "0", 16);
    assert.ok(first >= 0x2000 && first <= 0x3fff, address);
  }));
  const group = (min: number, max: number) => fc.integer({ min, max }).map((n) => n.toString(16));
  fc.assert(fc.property(group(0xfe80, 0xfebf), group(0, 0xffff), (head, tail) => {
    assert.equal(addressClassOf(`${head}::${tail}`), "linkLocal");
  }));
  fc.assert(fc.property(group(0xfc00, 0xfdff), group(0, 0xffff), (head, tail) => {
    assert.equal(addressClassOf(`${head}::${tail}`), "uniqueLocal");
  }));
});

Deno.test("hostRefusalOf() judges IP literals and localhost names, leaves other names to delivery time", () => {
  const refused = (url: string) => hostRefusalOf(new URL(url).hostname, "public");
  assert.equal(refused("http://127.0.0.1:8110/x"), "127.0.0.1 is a non-public address (loopback)");
  assert.equal(refused("http://[::1]/"), "::1 is a non-public address (loopback)");
  assert.equal(refused("http://[::ffff:169.254.169.254]/"), "::ffff:a9fe:a9fe is a non-public address (linkLocal)");
  assert.equal(refused("http://localhost:3000/"), '"localhost" is a loopback name');
  assert.equal(refused("http://LOCALHOST./"), '"localhost." is a loopback name');
  assert.equal(refused("http://hooks.dev.localhost/"), '"hooks.dev.localhost" is a loopback name');
  for (const url of ["https://hooks.partner.example/", "http://localhost.partner.example/", "http://8.8.8.8/"]) {
    assert.equal(refused(url), undefined, url);
  }
  assert.equal(literalAddressOf("[2606:4700::1111]"), "2606:4700::1111");
  assert.equal(literalAddressOf("hooks.partner.example"), undefined);
});

Deno.test("under egress any every host is allowed; under public exactly the non-public IPs are refused (property)", () => {
  fc.assert(fc.property(fc.oneof(fc.ipV4(), fc.ipV6()), (address) => {
    const hostname = address.includes(":") ? `[${address}]` : address;
    assert.equal(hostRefusalOf(hostname, "any"), undefined);
    assert.equal(hostRefusalOf(hostname, "public") === undefined, addressClassOf(address) === "public", address);
  }));
  assert.equal(hostRefusalOf("localhost", "any"), undefined);
});
