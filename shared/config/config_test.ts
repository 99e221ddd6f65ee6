import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "./config.ts";

Deno.test("loadConfig() applies the documented defaults and freezes the result", () => {
  const config = loadConfig({});
  assert.equal(config.BV_EDGE_PORT, 8080);
  assert.equal(config.regions.east.ingressPort, 8081);
  assert.equal(config.regions.west.ingressPort, 8082);
  assert.equal(config.regions.east.grpcInventoryPort, 50051);
  assert.equal(config.regions.west.grpcInventoryPort, 50052);
  assert.deepEqual(config.regions.east.kafkaBrokers, ["127.0.0.1:9092"]);
  assert.deepEqual(config.regions.west.kafkaBrokers, ["127.0.0.1:9192"]);
  assert.equal(config.regions.west.pgUrl, "postgres://postgres@127.0.0.1:5432/bv_west");
  assert.equal(config.regions.east.amqpUrl, "amqp://guest:guest@127.0.0.1:5672/bv_east");
  assert.equal(config.regions.east.redisPrefix, "bv:east:");
  assert.equal(config.BV_REFRESH_REUSE_GRACE_MS, 30_000);
  assert.ok(Object.isFrozen(config) && Object.isFrozen(config.regions.east));
});

Deno.test("loadConfig() names the malformed variable in one line", () => {
  const cases: [Record<string, string>, string][] = [
    [{ BV_EDGE_PORT: "eighty" }, "BV_EDGE_PORT"],
    [{ BV_MODE: "cloud" }, "BV_MODE"],
    [{ BV_PG_URL: "not a url" }, "BV_PG_URL"],
    [{ BV_ADMIN_EMAIL: "nobody" }, "BV_ADMIN_EMAIL"],
    [{ BV_ACCESS_TOKEN_TTL_SEC: "5" }, "BV_ACCESS_TOKEN_TTL_SEC"],
    [{ BV_REFRESH_REUSE_GRACE_MS: "-1" }, "BV_REFRESH_REUSE_GRACE_MS"],
    // Inventory refuses reservations over 3600 s: a longer TTL would fail every order instead of the start.
    [{ BV_RESERVATION_TTL_SEC: "7200" }, "BV_RESERVATION_TTL_SEC"],
  ];
  for (const [env, name] of cases) {
    assert.throws(() => loadConfig(env), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, name);
      assert.match(error.message, new RegExp(`^Configuration error: ${name} is malformed`));
      assert.ok(!error.message.includes("\n"));
      return true;
    });
  }
});

Deno.test("a process started with a malformed variable exits with one line naming it", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { loadConfigOrExit } from "${new URL("./config.ts", import.meta.url)}"; loadConfigOrExit();`,
    ],
    env: { BV_EAST_INGRESS_PORT: "70000" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(out.code, 78);
  const stderr = new TextDecoder().decode(out.stderr).trim();
  assert.equal(stderr.split("\n").length, 1);
  assert.match(stderr, /BV_EAST_INGRESS_PORT is malformed \("70000"\)/);
});

Deno.test("BV_INTERNAL_SIGNING_KEY has no default, and a malformed one is named without printing it", () => {
  assert.equal(loadConfig({}).BV_INTERNAL_SIGNING_KEY, undefined);
  const key = `whsec_${btoa("k".repeat(32))}`;
  assert.equal(loadConfig({ BV_INTERNAL_SIGNING_KEY: key }).BV_INTERNAL_SIGNING_KEY, key);
  // Too short (31 bytes), not base64, no `whsec_` prefix.
  for (const bad of [`whsec_${btoa("k".repeat(31))}`, "whsec_not base64!", btoa("k".repeat(32))]) {
    assert.throws(() => loadConfig({ BV_INTERNAL_SIGNING_KEY: bad }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^Configuration error: BV_INTERNAL_SIGNING_KEY is malformed: /);
      assert.ok(!error.message.includes(bad), "the secret is not echoed");
      return true;
    });
  }
});

Deno.test("URLs to this host's processes use connectHost: wildcards become loopback, IPv6 gets brackets", () => {
  const cases: [string, string][] = [
    ["127.0.0.1", "127.0.0.1"],
    ["localhost", "localhost"],
    ["0.0.0.0", "127.0.0.1"],
    ["::", "[::1]"],
    ["::1", "[::1]"],
    ["fd00::5", "[fd00::5]"],
  ];
  for (const [bind, connect] of cases) {
    const config = loadConfig({ BV_HOST: bind });
    assert.equal(config.BV_HOST, bind);
    assert.equal(config.connectHost, connect, bind);
    assert.ok(URL.canParse(`http://${config.connectHost}:8110/readyz`), bind);
  }
  for (const bad of ["http://example.com", "[::1]", "host name", "host:8080x", "face:8080", "db:5432", ":", "::::::"]) {
    assert.throws(() => loadConfig({ BV_HOST: bad }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /BV_HOST is malformed/);
      return true;
    }, bad);
  }
});

Deno.test("BV_GRPC_HOST keeps the unauthenticated gRPC servers on loopback whatever BV_HOST is", () => {
  for (const env of [{}, { BV_HOST: "0.0.0.0" }, { BV_HOST: "::" }]) {
    const config = loadConfig(env);
    assert.equal(config.BV_GRPC_HOST, "127.0.0.1", JSON.stringify(env));
    assert.equal(config.grpcConnectHost, "127.0.0.1", JSON.stringify(env));
  }
  const wide = loadConfig({ BV_HOST: "10.0.0.5", BV_GRPC_HOST: "::" });
  assert.equal(wide.BV_GRPC_HOST, "::");
  assert.equal(wide.grpcConnectHost, "[::1]", "the inventory client dials the gRPC bind, not BV_HOST");
  for (const bad of ["[::1]", "grpc host", "0.0.0.0:50051"]) {
    assert.throws(() => loadConfig({ BV_GRPC_HOST: bad }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.match(error.message, /^Configuration error: BV_GRPC_HOST is malformed/);
      return true;
    }, bad);
  }
});

Deno.test("BV_WEBHOOK_EGRESS defaults to public, accepts any, and names itself when malformed", () => {
  assert.equal(loadConfig({}).BV_WEBHOOK_EGRESS, "public");
  assert.equal(loadConfig({ BV_WEBHOOK_EGRESS: "any" }).BV_WEBHOOK_EGRESS, "any");
  for (const bad of ["none", "PUBLIC", "private"]) {
    assert.throws(() => loadConfig({ BV_WEBHOOK_EGRESS: bad }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(
        error.message,
        `Configuration error: BV_WEBHOOK_EGRESS is malformed ("${bad}"): must be "public" (public addresses only) ` +
          `or "any" (development: loopback and private too)`,
      );
      return true;
    });
  }
});

Deno.test("BV_TRUSTED_PROXIES takes comma-separated CIDRs or addresses and names a malformed entry", () => {
  assert.deepEqual(loadConfig({}).BV_TRUSTED_PROXIES, [
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "100.64.0.0/10",
    "169.254.0.0/16",
    "fe80::/10",
  ]);
  const config = loadConfig({ BV_TRUSTED_PROXIES: " 10.0.0.0/8,203.0.113.50 , 2001:db8::/32,2001:db8:ff::1" });
  assert.deepEqual(config.BV_TRUSTED_PROXIES, ["10.0.0.0/8", "203.0.113.50/32", "2001:db8::/32", "2001:db8:ff::1/128"]);
  assert.ok(Object.isFrozen(config.BV_TRUSTED_PROXIES));
  const cases: [string, string][] = [
    ["10.0.0.0/33", `"10.0.0.0/33" is not a CIDR or an IP address (e.g. 10.0.0.0/8, fd00::/8, 203.0.113.7)`],
    ["edge.example.com", `"edge.example.com" is not a CIDR or an IP address (e.g. 10.0.0.0/8, fd00::/8, 203.0.113.7)`],
    ["10.0.0.0/8,,fd00::/8", "has an empty entry (a stray comma?)"],
    ["10.1.2.3/8", `"10.1.2.3/8" has host bits set: write 10.0.0.0/8`],
    ["::ffff:10.0.0.0/104", `"::ffff:10.0.0.0/104" is IPv4-mapped IPv6: write the range as IPv4`],
    [Array(65).fill("10.0.0.1").join(","), "must list at most 64 ranges, got 65"],
  ];
  for (const [value, problem] of cases) {
    assert.throws(() => loadConfig({ BV_TRUSTED_PROXIES: value }), (error: unknown) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(error.variable, "BV_TRUSTED_PROXIES");
      assert.equal(
        error.message,
        `Configuration error: BV_TRUSTED_PROXIES is malformed ("${value.slice(0, 80)}"): ${problem}`,
      );
      return true;
    }, value);
  }
});

Deno.test("BV_FLASH_SALE_STREAMS_MAX defaults to 10,000 and refuses 0 and fractions", () => {
  assert.equal(loadConfig({}).BV_FLASH_SALE_STREAMS_MAX, 10_000);
  assert.equal(loadConfig({ BV_FLASH_SALE_STREAMS_MAX: "10100" }).BV_FLASH_SALE_STREAMS_MAX, 10_100);
  for (const bad of ["0", "1.5", "many"]) {
    assert.throws(() => loadConfig({ BV_FLASH_SALE_STREAMS_MAX: bad }), /BV_FLASH_SALE_STREAMS_MAX/);
  }
});
