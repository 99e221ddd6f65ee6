import assert from "node:assert/strict";
import { loadConfig } from "../../../shared/config/config.ts";
import {
  createClientAddressOf,
  DEFAULT_TRUSTED_PROXIES,
  forwardedClientAddressOf,
  isLoopbackClientAddress,
} from "./client_address.ts";

/** The address of a request from `peer` (as `Deno.serve` reports it) carrying `forwardedFor`. */
function addressOf(peer: string | undefined, forwardedFor?: string): string | undefined {
  const headers: Record<string, string> = forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor };
  const env = peer === undefined ? undefined : { remoteAddr: { transport: "tcp", hostname: peer, port: 40000 } };
  return forwardedClientAddressOf(new Request("http://security/api/v1/auth/login", { headers }), env);
}

Deno.test("forwardedClientAddressOf() takes a public peer and ignores what it forwarded", () => {
  assert.equal(addressOf("203.0.113.7", "198.51.100.1"), "203.0.113.7");
});

Deno.test("forwardedClientAddressOf() takes the right-most public address our hops appended", () => {
  // Client -> edge (appends the client) -> ingress (appends the edge) -> service over loopback.
  assert.equal(addressOf("127.0.0.1", "198.51.100.9, 203.0.113.7, 10.0.0.5"), "203.0.113.7");
  assert.equal(addressOf("::1", "203.0.113.7, 127.0.0.1"), "203.0.113.7");
  assert.equal(addressOf(undefined, "203.0.113.7"), "203.0.113.7");
});

Deno.test("forwardedClientAddressOf() takes the left-most address when every hop is local", () => {
  assert.equal(addressOf("127.0.0.1", "192.168.1.20, 127.0.0.1"), "192.168.1.20");
  assert.equal(addressOf("127.0.0.1"), "127.0.0.1");
});

Deno.test("forwardedClientAddressOf() stops at an entry that is not an address", () => {
  assert.equal(addressOf("127.0.0.1", "203.0.113.7, unknown, 10.0.0.5"), "10.0.0.5");
  assert.equal(addressOf("127.0.0.1", "0177.0.0.1"), "127.0.0.1");
  assert.equal(addressOf("127.0.0.1", "203.0.113.7,"), "127.0.0.1");
});

Deno.test("forwardedClientAddressOf() counts IPv6 per /64 and IPv4-mapped addresses as IPv4", () => {
  assert.equal(addressOf("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64");
  assert.equal(addressOf("127.0.0.1", "2001:DB8:1:2::ff"), "2001:db8:1:2::/64");
  assert.equal(addressOf("::ffff:203.0.113.7"), "203.0.113.7");
});

Deno.test("forwardedClientAddressOf() is undefined when nothing names the client", () => {
  assert.equal(addressOf(undefined), undefined);
  assert.equal(addressOf(undefined, "garbage"), undefined);
});

Deno.test("forwardedClientAddressOf() reads at most the last 8 X-Forwarded-For entries", () => {
  const local = Array.from({ length: 8 }, (_, i) => `10.0.0.${i + 1}`);
  assert.equal(addressOf("127.0.0.1", ["203.0.113.7", ...local].join(", ")), "10.0.0.1");
});

/** The address of a request as `createClientAddressOf({ trustedProxies })` reads it. */
function addressBehind(
  trustedProxies: readonly string[],
  peer: string | undefined,
  forwardedFor?: string,
): string | undefined {
  const headers: Record<string, string> = forwardedFor === undefined ? {} : { "x-forwarded-for": forwardedFor };
  const env = peer === undefined ? undefined : { remoteAddr: { transport: "tcp", hostname: peer, port: 40000 } };
  const request = new Request("http://security/api/v1/auth/login", { headers });
  return createClientAddressOf({ trustedProxies })(request, env);
}

const EDGE = "203.0.113.50";

Deno.test("createClientAddressOf() passes over an edge's public address listed as trusted to the client behind it", () => {
  // Client -> edge on a public address (allow-listed at the ingress) -> ingress -> service over loopback.
  const trusted = [...DEFAULT_TRUSTED_PROXIES, EDGE];
  assert.equal(addressBehind(trusted, "127.0.0.1", `198.51.100.1, ${EDGE}`), "198.51.100.1");
  assert.equal(addressBehind(trusted, "127.0.0.1", `198.51.100.2, ${EDGE}`), "198.51.100.2");
  // The edge connecting to the service itself.
  assert.equal(addressBehind(trusted, EDGE, "198.51.100.1"), "198.51.100.1");
  // Not listed, the edge is everyone's address.
  assert.equal(addressOf("127.0.0.1", `198.51.100.1, ${EDGE}`), EDGE);
  assert.equal(addressOf(EDGE, "198.51.100.1"), EDGE);
});

Deno.test("createClientAddressOf() reads X-Forwarded-For only from a trusted peer", () => {
  const trusted = ["10.0.0.0/8"];
  assert.equal(addressBehind(trusted, "10.1.2.3", "198.51.100.1"), "198.51.100.1");
  // Loopback is not in the list: a peer there is the client, whatever it forwarded.
  assert.equal(addressBehind(trusted, "127.0.0.1", "198.51.100.1"), "127.0.0.1");
  assert.equal(addressBehind(trusted, "127.0.0.1", "198.51.100.1, 10.0.0.5"), "127.0.0.1");
  // Every entry is walked against the list: a loopback entry is a client here.
  assert.equal(addressBehind(trusted, "10.1.2.3", "198.51.100.1, 127.0.0.1"), "127.0.0.1");
  assert.equal(addressBehind(["2001:db8:ff::/48"], "2001:db8:ff::7", "2001:db8:1::9"), "2001:db8:1:0::/64");
});

Deno.test("forwardedClientAddressOf() trusts carrier-grade NAT and link-local hops by default", () => {
  assert.equal(addressOf("100.64.0.7", "198.51.100.1"), "198.51.100.1");
  assert.equal(addressOf("127.0.0.1", "198.51.100.1, 100.127.255.254"), "198.51.100.1");
  assert.equal(addressOf("169.254.10.1", "198.51.100.1"), "198.51.100.1");
  assert.equal(addressOf("fe80::1", "198.51.100.1"), "198.51.100.1");
  // Just outside 100.64.0.0/10.
  assert.equal(addressOf("100.128.0.1", "198.51.100.1"), "100.128.0.1");
});

Deno.test("createClientAddressOf() refuses a malformed trusted range at setup, naming it", () => {
  const bad: [string, RegExp][] = [
    ["10.0.0.0/33", /"10\.0\.0\.0\/33" must be a CIDR or an IP address/],
    ["edge.example.com", /"edge\.example\.com" must be a CIDR/],
    ["0177.0.0.1/8", /"0177\.0\.0\.1\/8" must be a CIDR/],
    ["10.0.0.0/8/1", /must be a CIDR/],
    ["", /"" must be a CIDR/],
    ["203.0.113.7/24", /"203\.0\.113\.7\/24" has host bits set; write 203\.0\.113\.0\/24/],
    ["::ffff:10.0.0.0/104", /is IPv4-mapped IPv6; write the range as IPv4/],
  ];
  for (const [range, message] of bad) {
    assert.throws(() => createClientAddressOf({ trustedProxies: [range] }), (error: unknown) => {
      assert.ok(error instanceof TypeError, range);
      assert.match(error.message, message);
      return true;
    });
  }
  const tooMany = Array.from({ length: 65 }, (_, i) => `10.0.${i}.0/24`);
  assert.throws(() => createClientAddressOf({ trustedProxies: tooMany }), RangeError);
});

Deno.test("createClientAddressOf() takes BV_TRUSTED_PROXIES as the config parses it", () => {
  const configured = loadConfig({ BV_TRUSTED_PROXIES: `10.0.0.0/8, ${EDGE}, 2001:db8::/32` }).BV_TRUSTED_PROXIES;
  assert.equal(addressBehind(configured, "10.0.0.9", `198.51.100.1, ${EDGE}`), "198.51.100.1");
});

Deno.test("isLoopbackClientAddress() is true for what a request from this machine resolves to, and only that", () => {
  // Everything on one machine: the edge, the ingress and the client all on loopback.
  assert.equal(isLoopbackClientAddress(addressOf("127.0.0.1", "127.0.0.1, 127.0.0.1")!), true);
  assert.equal(isLoopbackClientAddress(addressOf("::1")!), true);
  assert.equal(isLoopbackClientAddress("127.0.0.53"), true);
  // A public client behind the local hops, and a client that wrote loopback into the header itself.
  assert.equal(isLoopbackClientAddress(addressOf("127.0.0.1", "203.0.113.7, 127.0.0.1")!), false);
  assert.equal(isLoopbackClientAddress(addressOf("127.0.0.1", "127.0.0.1, 203.0.113.7, 127.0.0.1")!), false);
  for (const other of ["10.0.0.5", "192.168.1.20", "2001:db8:1:2::/64", "fe80:0:0:0::/64", "128.0.0.1"]) {
    assert.equal(isLoopbackClientAddress(other), false, other);
  }
});
