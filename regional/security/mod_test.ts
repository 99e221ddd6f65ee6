import assert from "node:assert/strict";
import { createPgliteSql } from "../../shared/adapters/pglite/mod.ts";
import { loadConfig } from "../../shared/config/config.ts";
import { createLifecycle } from "../../shared/runtime/mod.ts";
import type { RegionPorts } from "../wiring/region_ports.ts";
import { createSecurityService } from "./mod.ts";

Deno.test("createSecurityService() counts a failed login against the client behind an edge in BV_TRUSTED_PROXIES", async () => {
  const edge = "203.0.113.50";
  const config = loadConfig({
    BV_TRUSTED_PROXIES: `127.0.0.0/8, 10.0.0.0/8, ${edge}`,
    // Security signs the auth writes it forwards in a replica region: the service requires the key.
    BV_INTERNAL_SIGNING_KEY: `whsec_${btoa("k".repeat(32))}`,
  });
  const sql = await createPgliteSql();
  const unused = () => Promise.reject(new Error("the security service uses the SQL port only"));
  const ports: RegionPorts = {
    region: "east",
    mode: "embedded",
    sql: () => Promise.resolve(sql),
    cache: unused,
    eventLog: unused,
    workQueue: unused,
    mqtt: unused,
    close: () => sql.close(),
  };
  const lifecycle = createLifecycle({ graceMs: 1_000, handleSignals: false });
  try {
    const app = await createSecurityService({
      config,
      region: "east",
      service: "security",
      name: "security-east",
      ports,
      lifecycle,
    });
    // Client -> edge on a public address -> ingress -> service.
    const response = await app.request("/api/v1/auth/login", {
      method: "POST",
      headers: { "content-type": "application/json", "x-forwarded-for": `198.51.100.1, ${edge}` },
      body: JSON.stringify({ email: "someone@example.com", password: "wrong-password-1" }),
    });
    assert.equal(response.status, 401);
    await response.body?.cancel();
    const rows = await sql.query<{ key: string }>`select key from auth_login_failures order by key`;
    assert.deepEqual(rows.map((row) => row.key), ["address:198.51.100.1", "email:someone@example.com"]);
  } finally {
    await lifecycle.stop("test done");
    await ports.close();
  }
});
