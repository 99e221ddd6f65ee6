/**
 * The flash-sale hub on a stopping server: `/sse/flash-sales` mounted on the service app, served by the
 * lifecycle over real HTTP. PGlite and the memory cache; about 2 s (PGlite boots).
 */
import assert from "node:assert/strict";
import { createMemoryCache } from "../../../shared/adapters/memory/mod.ts";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { migrate } from "../../../shared/ports/sql_migrate.ts";
import { createLifecycle, createServiceApp } from "../../../shared/runtime/mod.ts";
import { createTestTokens } from "../../../shared/testing/test_tokens.ts";
import { outboxMigrations } from "../outbox/mod.ts";
import { recordBroadcast } from "./broadcast_log.ts";
import { startFlashSaleHub } from "./flash_sale_hub.ts";
import { flashSalesMigrations } from "./migrations.ts";
import { createFlashSaleRoutes } from "./routes.ts";
import { readToEnd } from "../../../shared/testing/read_to_end.ts";

const CHANNEL = "flash_sales:test";
const decoder = new TextDecoder();

Deno.test("a stopping server ends /sse/flash-sales with a last comment before its closers run", async () => {
  const sql = await createPgliteSql();
  const cache = createMemoryCache();
  try {
    await migrate(sql, [...outboxMigrations, ...flashSalesMigrations]);
    const hub = await startFlashSaleHub({ sql, cache, channel: CHANNEL });
    const lifecycle = createLifecycle({ graceMs: 4_000, handleSignals: false });
    let streamsAtClose = -1;
    lifecycle.onStop("flash sales", () => {
      streamsAtClose = hub.subscribers();
      return hub.close();
    });
    const app = createServiceApp({ name: "ecommerce-east", checks: {} });
    app.route(
      "/",
      createFlashSaleRoutes({
        sql,
        cache,
        verifier: (await createTestTokens()).verifier,
        hub,
        nudgeOutbox: () => {},
        onSaleStarted: () => {},
        now: Date.now,
      }),
    );
    const { port } = lifecycle.serve(app, { port: 0, hostname: "127.0.0.1", name: "ecommerce-east" });

    const response = await fetch(`http://127.0.0.1:${port}/sse/flash-sales`);
    const reader = response.body!.getReader();
    let text = "";
    while (!text.includes(": connected\n\n")) text += decoder.decode((await reader.read()).value);
    const data = { saleId: crypto.randomUUID(), productId: "p-1", price: "9.90", currency: "EUR" };
    const stored = await recordBroadcast(sql, { eventId: crypto.randomUUID(), event: "flash_sale.started", data }, 100);
    await cache.publish(CHANNEL, JSON.stringify(stored));

    const outcome = await lifecycle.stop("SIGTERM");
    text += await readToEnd(reader);
    assert.match(text, new RegExp(`id: ${stored!.seq}\nevent: flash_sale.started\n`), "what was sent before arrives");
    assert.ok(
      text.endsWith(": shutting down; reconnect with Last-Event-ID\n\n"),
      `the last frame says why the stream ends: ${JSON.stringify(text)}`,
    );
    assert.equal(streamsAtClose, 0, "the stream ended on the shutdown signal, not in the closer");
    assert.equal(outcome.serversDrained, true);
    assert.deepEqual(outcome.closed, ["flash sales"]);
  } finally {
    await cache.close();
    await sql.close();
  }
});

Deno.test("streams that end first detach from the shutdown signal; once it aborts, new streams get 503", async () => {
  const sql = await createPgliteSql();
  const cache = createMemoryCache();
  try {
    await migrate(sql, [...outboxMigrations, ...flashSalesMigrations]);
    const hub = await startFlashSaleHub({ sql, cache, channel: CHANNEL });
    try {
      const shutdown = new AbortController();
      // The signal outlives every stream: one that ended must not leave its listener behind.
      let listeners = 0;
      const { addEventListener, removeEventListener } = shutdown.signal;
      shutdown.signal.addEventListener = (...args: Parameters<typeof addEventListener>) => {
        listeners++;
        addEventListener.apply(shutdown.signal, args);
      };
      shutdown.signal.removeEventListener = (...args: Parameters<typeof removeEventListener>) => {
        listeners--;
        removeEventListener.apply(shutdown.signal, args);
      };
      const client = new AbortController();
      hub.open({ signal: client.signal, shutdown: shutdown.signal });
      const cancelled = hub.open({ signal: new AbortController().signal, shutdown: shutdown.signal });
      assert.equal(listeners, 2);
      client.abort();
      await cancelled.body!.cancel();
      assert.equal(hub.subscribers(), 0);
      assert.equal(listeners, 0, "streams that ended first detached themselves");
      shutdown.abort();
      assert.throws(
        () => hub.open({ signal: new AbortController().signal, shutdown: shutdown.signal }),
        (error) => error instanceof ProblemError && error.status === 503,
      );
    } finally {
      await hub.close();
    }
  } finally {
    await cache.close();
    await sql.close();
  }
});
