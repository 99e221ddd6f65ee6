/**
 * `serveOrderSse()` on a fake stream and hub: what it leaves behind when its client is gone before the
 * stream starts. Timers are observed through wrapped `setTimeout`/`clearTimeout`, so a leak is an
 * assertion, not only a sanitizer report.
 */
import assert from "node:assert/strict";
import type { SSEStreamingApi } from "hono/streaming";
import type { Principal } from "../../../shared/auth/mod.ts";
import type { HubSubscription, NotificationHub } from "./hub.ts";
import { serveOrderSse } from "./order_sse.ts";

const principal: Principal = {
  userId: "u-1",
  email: "u-1@test.example",
  roles: ["CUSTOMER"],
  tokenId: "jti-1",
  // An hour of validity: the expiry timer would wait that long.
  expiresAt: Math.floor(Date.now() / 1000) + 3_600,
};

/** Runs `body` with every setTimeout it arms tracked until it fires or is cleared; clears leftovers after. */
type TimerId = ReturnType<typeof setTimeout>;

async function withTrackedTimeouts(body: (live: Set<TimerId>) => Promise<void>): Promise<void> {
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  const live = new Set<TimerId>();
  globalThis.setTimeout = ((callback: () => void, delayMs?: number) => {
    const id = realSet(() => {
      live.delete(id);
      callback();
    }, delayMs);
    live.add(id);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id?: TimerId) => {
    if (id !== undefined) live.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  try {
    await body(live);
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
    for (const id of live) realClear(id);
  }
}

function fakes() {
  const written: string[] = [];
  const stream = {
    write: (bytes: Uint8Array) => {
      written.push(new TextDecoder().decode(bytes));
      return Promise.resolve(stream);
    },
    abort: () => {},
    onAbort: () => {},
  } as unknown as SSEStreamingApi;
  let added = 0;
  const hub = {
    add: () => {
      added++;
      return {} as HubSubscription;
    },
    remove: () => {},
  } as unknown as NotificationHub;
  return { stream, hub, written, added: () => added };
}

for (const which of ["request", "shutdown"] as const) {
  Deno.test(`serveOrderSse() whose ${which} signal is already aborted ends at once and leaves no timer`, async () => {
    await withTrackedTimeouts(async (live) => {
      const { stream, hub, added } = fakes();
      const aborted = AbortSignal.abort();
      const open = new AbortController().signal;
      await serveOrderSse({
        stream,
        signal: which === "request" ? aborted : open,
        shutdown: which === "shutdown" ? aborted : open,
        hub,
        principal,
        orderId: "0190a3c4-0000-7000-8000-000000000001",
        after: "0",
        heartbeatMs: 15_000,
        sendBufferBytesMax: 1024 * 1024,
      });
      assert.equal(live.size, 0, "no expiry timer armed for a stream that already ended");
      assert.equal(added(), 0, "no hub subscription for a stream that already ended");
    });
  });
}

Deno.test("serveOrderSse() ends on shutdown with a last comment, no error event, and frees its subscription", async () => {
  await withTrackedTimeouts(async (live) => {
    const { stream, written } = fakes();
    let removed = 0;
    const hub = {
      add: () => ({} as HubSubscription),
      remove: () => void removed++,
    } as unknown as NotificationHub;
    const shutdown = new AbortController();
    const serving = serveOrderSse({
      stream,
      signal: new AbortController().signal,
      shutdown: shutdown.signal,
      hub,
      principal,
      orderId: "0190a3c4-0000-7000-8000-000000000001",
      after: "0",
      heartbeatMs: 15_000,
      sendBufferBytesMax: 1024 * 1024,
    });
    shutdown.abort();
    await serving;
    assert.deepEqual(written, ["retry: 2000\n: connected\n\n", ": shutting down; reconnect with Last-Event-ID\n\n"]);
    assert.equal(removed, 1, "the hub subscription is freed");
    assert.equal(live.size, 0, "no expiry timer left behind");
  });
});
