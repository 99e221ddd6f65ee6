/**
 * Journey: a newcomer runs `deno task start` (embedded default: no external service) and uses the
 * platform through the edge. Every `/readyz` must be green within 20 s; acknowledged writes survive a
 * restart; SIGTERM drains and exits 0.
 */
import assert from "node:assert/strict";
import { createGrpcClient, healthClientConstructor } from "../shared/adapters/grpc/mod.ts";
import { call, journeyEnv, startPlatform } from "./support/platform.ts";

const READY_BUDGET_MS = 20_000;

Deno.test({
  name: "deno task start: every /readyz green within 20 s; auth works through the edge; writes survive a restart",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "bv-embedded-" });
    const env = journeyEnv(1, {
      BV_DATA_DIR: dataDir,
      BV_ADMIN_EMAIL: "root@journey.test",
      BV_ADMIN_PASSWORD: "journey-admin-pass",
    });
    const started = performance.now();
    let platform = await startPlatform("scripts/start.ts", env);
    try {
      const readyMs = await platform.waitReady(READY_BUDGET_MS, started);
      console.log(`embedded platform ready in ${Math.round(readyMs)} ms`);

      const edge = platform.edgeUrl;
      const email = `ada-${Date.now()}@journey.test`;
      const signup = await call(`${edge}/api/v1/auth/signup`, { body: { email, password: "correct horse battery" } });
      assert.equal(signup.status, 201, JSON.stringify(signup.body));
      assert.equal(typeof signup.body.accessToken, "string");
      assert.equal(typeof signup.body.refreshToken, "string");
      assert.ok(signup.body.expiresIn > 0);
      assert.equal(signup.headers.get("x-bv-region"), "east");

      const login = await call(`${edge}/api/v1/auth/login`, { body: { email, password: "correct horse battery" } });
      assert.equal(login.status, 200);
      const refreshed = await call(`${edge}/api/v1/auth/refresh`, { body: { refreshToken: login.body.refreshToken } });
      assert.equal(refreshed.status, 200);
      assert.notEqual(refreshed.body.refreshToken, login.body.refreshToken);

      // A customer is refused an ADMIN route; the admin created at start is let in.
      const asCustomer = await call(`${edge}/api/v1/ops/event-types`, { token: login.body.accessToken });
      assert.equal(asCustomer.status, 403);
      assert.equal(asCustomer.headers.get("content-type"), "application/problem+json");
      const admin = await call(`${edge}/api/v1/auth/login`, {
        body: { email: "root@journey.test", password: "journey-admin-pass" },
      });
      assert.equal(admin.status, 200);
      const asAdmin = await call(`${edge}/api/v1/ops/event-types`, { token: admin.body.accessToken });
      assert.equal(asAdmin.status, 200);
      assert.ok(asAdmin.body.eventTypes.includes("ecommerce.order.order.created.v1"));

      // Bad input gets problem+json, never a 5xx.
      const malformed = await fetch(`${edge}/api/v1/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{not json",
      });
      assert.equal(malformed.status, 400);
      assert.equal((await malformed.json()).code, "COMMON.MALFORMED_JSON");
      const unknownRoute = await call(`${edge}/api/v1/nothing-here`);
      assert.equal(unknownRoute.status, 404);
      assert.equal(unknownRoute.body.code, "COMMON.NOT_FOUND");
      const forged = await call(`${edge}/api/v1/ops/event-types`, { token: `${admin.body.accessToken}x` });
      assert.equal(forged.status, 401);

      // West is its own region with its own database: the east user does not exist there.
      const westLogin = await call(`${platform.ingressUrl.west}/api/v1/auth/login`, {
        body: { email, password: "correct horse battery" },
      });
      assert.equal(westLogin.status, 401);

      // The inventory gRPC port answers grpc.health.v1 with the same readiness as /readyz.
      for (const port of [env.BV_EAST_GRPC_INVENTORY_PORT, env.BV_WEST_GRPC_INVENTORY_PORT]) {
        const health = createGrpcClient(healthClientConstructor(), `127.0.0.1:${port}`, {
          deadlineMs: 3_000,
          retry: { maxAttempts: 2, baseDelayMs: 50, maxDelayMs: 200 },
        });
        try {
          assert.deepEqual(await health.call("Check", { service: "" }), { status: "SERVING" });
        } finally {
          health.close();
        }
      }

      const metrics = await fetch(`${platform.ingressUrl.east}/metrics`);
      assert.match(await metrics.text(), /bv_http_requests_total/);

      assert.equal(await platform.stop(), 0, await platform.tail());
      platform = await startPlatform("scripts/start.ts", env);
      await platform.waitReady(READY_BUDGET_MS);
      const again = await call(`${edge}/api/v1/auth/login`, { body: { email, password: "correct horse battery" } });
      assert.equal(again.status, 200, "a user signed up before the restart can still log in");
    } finally {
      await platform.stop();
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
