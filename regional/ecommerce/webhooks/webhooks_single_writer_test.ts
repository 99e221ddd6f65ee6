/**
 * Partner webhook subscriptions follow the order writer (orders/writer): each region's database on its own
 * PostgreSQL cluster (the project clusters, linked by logical replication as `start:infra` links them), each region's
 * e-commerce front as `regional/ecommerce/mod.ts` composes it — the writer forwarder on `/api/v1/*`, then the
 * subscriptions API — served where the region's ingress would send `/api/v1/webhooks/*`. A partner subscribing
 * through the replica (west) gets a subscription written by the writer (east, whose outbox publishes the order
 * events), readable through either region; a delete through west removes it in both.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import type { Sql } from "../../../shared/ports/mod.ts";
import { createTestTokens, type TestTokens } from "../../../shared/testing/test_tokens.ts";
import { ensureOrderReplication } from "../../../scripts/postgres/order_replication.ts";
import { withRegionDatabases } from "../../../scripts/postgres/_region_databases_for_test.ts";
import { generateInternalSigningKey } from "../../../scripts/platform_processes.ts";
import { call } from "../../../tests/support/platform.ts";
import {
  createWriterRoleReader,
  forwardOrderWrites,
  ORDER_WRITER_HEADER,
  sqlReplicationPositions,
} from "../orders/writer/mod.ts";
import { createWebhookRoutes } from "./routes.ts";
import { createSecretBox } from "./secret_box.ts";

/** Longer than the role reader's cache (500 ms). */
const ROLE_CACHE_PASSED_MS = 700;
const SECRETS_KEY = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))));
const BASE = "/api/v1/webhooks/subscriptions";

interface Front {
  readonly url: string;
  stop(): Promise<void>;
}

/** A region's e-commerce front for webhooks (on its database), listening on a port of its own (its "ingress"). */
async function startFront(
  sql: Sql,
  tokens: TestTokens,
  signingKey: string,
  ingressOf: (region: string) => string | undefined,
): Promise<Front & { readonly port: number }> {
  const app = new Hono();
  app.use(
    "/api/v1/*",
    forwardOrderWrites({
      role: createWriterRoleReader(sql),
      positions: sqlReplicationPositions(sql),
      ingressUrlOf: ingressOf,
      timeoutMs: 5_000,
      signingKey,
    }),
  );
  const box = await createSecretBox(SECRETS_KEY);
  app.route("/", createWebhookRoutes({ sql, verifier: tokens.verifier, box, secretOverlapMs: 60_000, egress: "any" }));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
  const port = server.addr.port;
  return { url: `http://127.0.0.1:${port}`, port, stop: () => server.shutdown() };
}

Deno.test({
  name: "webhook subscriptions follow the order writer: created and deleted through west, written by east, in both",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await withRegionDatabases("bvwh", async ({ dbs, east: eastSql, west: westSql }) => {
      await ensureOrderReplication(dbs, { log: () => {}, initialSyncTimeoutMs: 20_000 });
      const tokens = await createTestTokens();
      const signingKey = generateInternalSigningKey();
      const urls: Record<string, string> = {};
      const ingressOf = (region: string) => urls[region];
      const fronts = [
        await startFront(eastSql, tokens, signingKey, ingressOf),
        await startFront(westSql, tokens, signingKey, ingressOf),
      ];
      urls.east = fronts[0].url;
      urls.west = fronts[1].url;
      try {
        await new Promise((resolve) => setTimeout(resolve, ROLE_CACHE_PASSED_MS));
        const token = await tokens.token(`partner-${crypto.randomUUID()}`, ["PARTNER"]);
        const body = { url: "https://partner.example/hooks", events: ["ecommerce.order.order.created.v1"] };

        // Subscribed through the replica: forwarded to east, which writes it (and will deliver east's events).
        const created = await call(`${urls.west}${BASE}`, { body, token });
        assert.equal(created.status, 201, JSON.stringify(created.body));
        assert.equal(created.headers.get(ORDER_WRITER_HEADER), "east");
        const id = String(created.body.id);
        assert.equal((await eastSql.query`select 1 from webhook_subscriptions where id = ${id}`).length, 1);
        // The answer was held until west had the copy: a GET through either region finds it.
        for (const url of [urls.east, urls.west]) {
          const got = await call(`${url}${BASE}/${id}`, { token });
          assert.equal(got.status, 200, `${url}: ${JSON.stringify(got.body)}`);
          assert.equal(got.body.id, id);
          const listed = await call(`${url}${BASE}`, { token });
          assert.deepEqual(listed.body.items.map((s: { id: string }) => s.id), [id], url);
        }

        // Rotated through west: forwarded too (east's row changes, west's copy follows).
        const rotated = await call(`${urls.west}${BASE}/${id}/rotate-secret`, { method: "POST", token });
        assert.equal(rotated.status, 200, JSON.stringify(rotated.body));
        assert.equal(rotated.headers.get(ORDER_WRITER_HEADER), "east");

        // Deleted through west: forwarded, gone in both regions.
        const deleted = await call(`${urls.west}${BASE}/${id}`, { method: "DELETE", token });
        assert.equal(deleted.status, 204);
        assert.equal(deleted.headers.get(ORDER_WRITER_HEADER), "east");
        for (const url of [urls.east, urls.west]) {
          const gone = await call(`${url}${BASE}/${id}`, { token });
          assert.equal(gone.status, 404, `${url}: ${JSON.stringify(gone.body)}`);
        }
      } finally {
        for (const front of fronts) await front.stop();
      }
    });
  },
});
