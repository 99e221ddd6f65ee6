import assert from "node:assert/strict";
import { forwardedClientAddressOf } from "./client_address.ts";

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
