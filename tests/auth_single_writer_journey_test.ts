/**
 * Journey: auth follows the order writer. Each region's security service runs on its own PostgreSQL cluster (the
 * project clusters, logical replication between them as `start:infra` links them), served where the region's
 * ingress would send `/api/v1/auth/*`. East writes: an account made there cannot be made again through west, a
 * login through west is forwarded to east and its refresh token works in both regions, a logout through west
 * revokes it everywhere. Then east goes away, west is promoted as the DR drill promotes it, and west logs the
 * user in on its own.
 */
import assert from "node:assert/strict";
import { loadConfig, type Region } from "../shared/config/config.ts";
import { createLifecycle } from "../shared/runtime/mod.ts";
import type { Sql } from "../shared/ports/mod.ts";
import type { RegionPorts } from "../regional/wiring/region_ports.ts";
import { regionalVerifier } from "../regional/wiring/verifier.ts";
import { createSecurityService } from "../regional/security/mod.ts";
import { ORDER_WRITER_HEADER, REPLICA_WAIT_HEADER } from "../regional/ecommerce/orders/writer/mod.ts";
import { ensureOrderReplication, promoteOrderWriter } from "../scripts/postgres/order_replication.ts";
import { withRegionDatabases } from "../scripts/postgres/_region_databases_for_test.ts";
import { generateInternalSigningKey } from "../scripts/platform_processes.ts";
import { call } from "./support/platform.ts";

/** Longer than the role reader's cache (500 ms): every process sees a promotion within it. */
const ROLE_CACHE_PASSED_MS = 700;

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** One region's security service on its database, listening on its ingress port and on its own (JWKS) port. */
async function startSecurity(config: ReturnType<typeof loadConfig>, region: Region, sql: Sql) {
  const unused = () => Promise.reject(new Error("the security service uses the SQL port only"));
  const ports: RegionPorts = {
    region,
    mode: "infra",
    sql: () => Promise.resolve(sql),
    cache: unused,
    eventLog: unused,
    workQueue: unused,
    mqtt: unused,
    // The pools belong to withRegionDatabases, which closes them.
    close: () => Promise.resolve(),
  };
  const lifecycle = createLifecycle({ graceMs: 1_000, handleSignals: false });
  const app = await createSecurityService({
    config,
    region,
    service: "security",
    name: `security-${region}`,
    ports,
    lifecycle,
  });
  const servers = [config.regions[region].ingressPort, config.regions[region].servicePorts.security].map((port) =>
    Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, app.fetch)
  );
  return {
    url: `http://127.0.0.1:${config.regions[region].ingressPort}`,
    async stop() {
      await Promise.all(servers.map((server) => server.shutdown()));
      await lifecycle.stop("journey done");
    },
  };
}

Deno.test({
  name: "auth follows the order writer: one account per e-mail, logins and logouts through west, west alone after",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvauth", async ({ dbs, east: eastSql, west: westSql }) => {
      const config = loadConfig({
        BV_EAST_INGRESS_PORT: String(freePort()),
        BV_WEST_INGRESS_PORT: String(freePort()),
        BV_EAST_SERVICE_PORT_BASE: String(freePort()),
        BV_WEST_SERVICE_PORT_BASE: String(freePort()),
        BV_INTERNAL_SIGNING_KEY: generateInternalSigningKey(),
        BV_LOG_LEVEL: "warn",
      });
      // Both start standalone (each makes its admin account), then the regions are linked with east writing.
      const eastService = await startSecurity(config, "east", eastSql);
      const westService = await startSecurity(config, "west", westSql);
      let eastStopped = false;
      try {
        await ensureOrderReplication(dbs, { log: () => {}, initialSyncTimeoutMs: 20_000 });
        await new Promise((resolve) => setTimeout(resolve, ROLE_CACHE_PASSED_MS));
        const east = eastService.url;
        const west = westService.url;
        const email = `single-writer-${crypto.randomUUID()}@journey.test`;
        const password = "correct horse battery";

        const signedUp = await call(`${east}/api/v1/auth/signup`, { body: { email, password } });
        assert.equal(signedUp.status, 201, JSON.stringify(signedUp.body));
        // The same e-mail through west: forwarded to east, which holds the account.
        const again = await call(`${west}/api/v1/auth/signup`, { body: { email, password } });
        assert.equal(again.status, 409, JSON.stringify(again.body));
        assert.equal(again.body.code, "AUTH.EMAIL_TAKEN");
        assert.equal(again.headers.get(ORDER_WRITER_HEADER), "east");

        // Login through west is written (refresh token, counters) in east and held until west has the copy.
        const login = await call(`${west}/api/v1/auth/login`, { body: { email, password } });
        assert.equal(login.status, 200, JSON.stringify(login.body));
        assert.equal(login.headers.get(ORDER_WRITER_HEADER), "east");
        assert.ok(Number(login.headers.get(REPLICA_WAIT_HEADER)) >= 0);
        // Its access token is signed with east's key; every region's services verify it (the JWKS union).
        for (const region of ["east", "west"] as const) {
          const principal = await regionalVerifier(config, region).verify(login.body.accessToken);
          assert.equal(principal.email, email);
        }
        // Its refresh token works in either region (rotation: each use gives the next one).
        const inEast = await call(`${east}/api/v1/auth/refresh`, { body: { refreshToken: login.body.refreshToken } });
        assert.equal(inEast.status, 200, JSON.stringify(inEast.body));
        const inWest = await call(`${west}/api/v1/auth/refresh`, { body: { refreshToken: inEast.body.refreshToken } });
        assert.equal(inWest.status, 200, JSON.stringify(inWest.body));
        assert.equal(inWest.headers.get(ORDER_WRITER_HEADER), "east");
        const live = inWest.body.refreshToken;

        // Logout through west revokes the session where it is stored: a refresh fails in both regions.
        const logout = await call(`${west}/api/v1/auth/logout`, { body: { refreshToken: live } });
        assert.equal(logout.status, 204);
        assert.equal(logout.headers.get(ORDER_WRITER_HEADER), "east");
        for (const url of [east, west]) {
          const refused = await call(`${url}/api/v1/auth/refresh`, { body: { refreshToken: live } });
          assert.equal(refused.status, 401, `${url}: ${JSON.stringify(refused.body)}`);
        }
        const beforeFailover = await call(`${west}/api/v1/auth/login`, { body: { email, password } });
        assert.equal(beforeFailover.status, 200, JSON.stringify(beforeFailover.body));

        // East goes away; west is promoted exactly as the DR drill does it.
        await eastService.stop();
        eastStopped = true;
        await promoteOrderWriter(dbs, "west", () => {});
        await new Promise((resolve) => setTimeout(resolve, ROLE_CACHE_PASSED_MS));
        const alone = await call(`${west}/api/v1/auth/login`, { body: { email, password } });
        assert.equal(alone.status, 200, JSON.stringify(alone.body));
        assert.equal(alone.headers.get(ORDER_WRITER_HEADER), null);
        // The session made before the failover is west's too, and the revoked one stays revoked.
        const kept = await call(`${west}/api/v1/auth/refresh`, {
          body: { refreshToken: beforeFailover.body.refreshToken },
        });
        assert.equal(kept.status, 200, JSON.stringify(kept.body));
        const revoked = await call(`${west}/api/v1/auth/refresh`, { body: { refreshToken: live } });
        assert.equal(revoked.status, 401, JSON.stringify(revoked.body));
        const newcomer = await call(`${west}/api/v1/auth/signup`, {
          body: { email: `after-failover-${crypto.randomUUID()}@journey.test`, password },
        });
        assert.equal(newcomer.status, 201, JSON.stringify(newcomer.body));
      } finally {
        if (!eastStopped) await eastService.stop();
        await westService.stop();
      }
    });
  },
});
