import assert from "node:assert/strict";
import { eventually, type FakeRegion, fakeRegion } from "./testing/fake_region.ts";
import { createEdge, type Edge, type EdgeOptions } from "./worker.ts";

const FAST_UPSTREAM = { backoffInitialMs: 20, backoffMaxMs: 100 };

interface Received {
  readonly id: string;
  readonly event: string;
  readonly data: string;
}

interface TestClient {
  readonly response: Response;
  readonly events: Received[];
  /** Resolves when the edge ends the stream (or rejects the read). */
  readonly ended: Promise<void>;
  close(): void;
}

/** A real HTTP SSE client of the edge that records every event it reads. */
async function sseClient(url: string, headers: Record<string, string> = {}): Promise<TestClient> {
  const abort = new AbortController();
  const response = await fetch(`${url}/sse/flash-sales`, { headers, signal: abort.signal });
  const events: Received[] = [];
  const ended = (async () => {
    if (!response.ok) return void await response.body?.cancel();
    let buffer = "";
    try {
      for await (const chunk of response.body!.pipeThrough(new TextDecoderStream())) {
        buffer += chunk;
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const fields: Record<string, string> = {};
          for (const line of buffer.slice(0, end).split("\n")) {
            const colon = line.indexOf(":");
            if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 2);
          }
          buffer = buffer.slice(end + 2);
          if (fields.data !== undefined) {
            events.push({ id: fields.id ?? "", event: fields.event ?? "", data: fields.data });
          }
        }
      }
    } catch {
      // Aborted by the test or errored by the edge: either way the stream is over.
    }
  })();
  return { response, events, ended, close: () => abort.abort() };
}

interface Rig {
  readonly east: FakeRegion;
  readonly west: FakeRegion;
  readonly edge: Edge;
  readonly url: string;
  close(): Promise<void>;
}

/** Two fake regions and an edge with flash-sale fan-out, served on real loopback HTTP. */
async function rig(flashSales: EdgeOptions["flashSales"] = {}): Promise<Rig> {
  const east = fakeRegion("east");
  const west = fakeRegion("west");
  const edge = createEdge({
    regions: [east, west],
    healthTimeoutMs: 1_000,
    // Probe latency is not the subject here: clients without a hint stay on east.
    routing: { latencyToleranceMs: 60_000 },
    flashSales: { upstream: FAST_UPSTREAM, ...flashSales },
  });
  await edge.start();
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, edge.app.fetch);
  await eventually("both upstream subscriptions", () => east.state.flashOpen === 1 && west.state.flashOpen === 1);
  return {
    east,
    west,
    edge,
    url: `http://127.0.0.1:${server.addr.port}`,
    close: async () => {
      await edge.stop();
      await server.shutdown();
      await Promise.all([east.close(), west.close()]);
    },
  };
}

async function metric(r: Rig, line: string): Promise<number> {
  const text = await (await r.edge.app.request("/metrics")).text();
  const found = text.split("\n").find((l) => l.startsWith(`${line} `));
  return found === undefined ? NaN : Number(found.slice(line.length + 1));
}

Deno.test("edge fans each region's events out to all its clients over one upstream stream per region", async () => {
  const r = await rig();
  const clients: TestClient[] = [];
  try {
    for (let i = 0; i < 150; i++) {
      // 150 audience members, each from an address of its own (one client may hold only 32 streams).
      const from = { "x-forwarded-for": `10.0.0.${i}` };
      clients.push(await sseClient(r.url, i % 3 === 0 ? { ...from, "x-bv-region": "west" } : from));
    }
    const westClients = clients.filter((_, i) => i % 3 === 0);
    const eastClients = clients.filter((_, i) => i % 3 !== 0);
    assert.ok(westClients.every((c) => c.response.headers.get("x-bv-region") === "west"));
    assert.ok(eastClients.every((c) => c.response.headers.get("x-bv-region") === "east"));
    assert.equal(await metric(r, 'bv_edge_sse_clients{region="east"}'), 100);
    r.east.flashSale("flash_sale.started", { saleId: "s1", productId: "p1", price: "9.99" });
    r.west.flashSale("flash_sale.ended", { saleId: "w1", productId: "p2" });
    await eventually("every client got its region's event", () => clients.every((c) => c.events.length === 1));
    assert.deepEqual(eastClients[7].events[0], {
      id: "east:1",
      event: "flash_sale.started",
      data: JSON.stringify({ saleId: "s1", productId: "p1", price: "9.99" }),
    });
    assert.ok(eastClients.every((c) => c.events[0].id === "east:1"));
    assert.ok(westClients.every((c) => c.events[0].id === "west:1" && c.events[0].event === "flash_sale.ended"));
    // 150 clients, and still exactly one upstream subscription to each region.
    assert.equal(r.east.state.flashConnects, 1);
    assert.equal(r.west.state.flashConnects, 1);
    assert.equal(await metric(r, 'bv_edge_sse_upstream_up{region="east"}'), 1);
  } finally {
    for (const client of clients) client.close();
    await r.close();
  }
});

Deno.test("edge disconnects a client that stops reading once its queue is full, and others keep theirs", async () => {
  const r = await rig({ clientQueueMax: 8, recentEventsMax: 4 });
  const reader = await sseClient(r.url);
  try {
    // Through the app directly: nothing ever reads this body, so its queue fills.
    const stuck = await r.edge.app.request("/sse/flash-sales");
    assert.equal(stuck.status, 200);
    assert.equal(await metric(r, 'bv_edge_sse_clients{region="east"}'), 2);
    for (let i = 0; i < 12; i++) {
      r.east.flashSale("flash_sale.started", { n: i });
      // Spaced out: a burst of more than the queue bound at once would overflow a reading client too.
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await eventually("the reading client got all twelve", () => reader.events.length === 12);
    assert.equal(await metric(r, "bv_edge_sse_slow_dropped_total"), 1);
    assert.equal(await metric(r, 'bv_edge_sse_clients{region="east"}'), 1);
    await assert.rejects(stuck.text(), "the stuck stream was errored, its queue discarded");
  } finally {
    reader.close();
    await r.close();
  }
});

Deno.test("edge frees a client as soon as it disconnects", async () => {
  const r = await rig();
  try {
    const clients = await Promise.all(Array.from({ length: 20 }, () => sseClient(r.url)));
    assert.equal(await metric(r, 'bv_edge_sse_clients{region="east"}'), 20);
    for (const client of clients) client.close();
    await eventually("no client left", async () => await metric(r, 'bv_edge_sse_clients{region="east"}') === 0);
    // Events after they left go nowhere and cost nothing.
    r.east.flashSale("flash_sale.started", { n: 1 });
    assert.equal(r.east.state.flashConnects, 1);
  } finally {
    await r.close();
  }
});

Deno.test("a reconnecting client resumes from the edge's ring on the region its Last-Event-ID names", async () => {
  const r = await rig();
  const clients: TestClient[] = [];
  try {
    for (let i = 1; i <= 3; i++) r.east.flashSale("flash_sale.started", { n: i });
    const watcher = await sseClient(r.url);
    clients.push(watcher);
    r.east.flashSale("flash_sale.started", { n: 4 });
    await eventually("the live event", () => watcher.events.length === 1);
    assert.equal(watcher.events[0].id, "east:4", "a new client gets live events only");
    // It asks for west, but its Last-Event-ID says it was on east: it resumes there, from the ring.
    const resumed = await sseClient(r.url, { "last-event-id": "east:2", "x-bv-region": "west" });
    clients.push(resumed);
    await eventually("the replay", () => resumed.events.length === 2);
    assert.equal(resumed.response.headers.get("x-bv-region"), "east");
    assert.deepEqual(resumed.events.map((e) => e.id), ["east:3", "east:4"]);
    const foreign = await sseClient(r.url, { "last-event-id": "42", "x-bv-region": "west" });
    clients.push(foreign);
    assert.equal(foreign.response.headers.get("x-bv-region"), "west", "an id the edge did not issue: live only");
    assert.equal(r.east.state.flashConnects, 1, "no resume ever reached the region");
  } finally {
    for (const client of clients) client.close();
    await r.close();
  }
});

Deno.test("edge resumes its upstream with Last-Event-ID after the region drops it, losing nothing", async () => {
  const r = await rig();
  const client = await sseClient(r.url);
  try {
    r.east.flashSale("flash_sale.started", { n: 1 });
    r.east.flashSale("flash_sale.started", { n: 2 });
    await eventually("two events", () => client.events.length === 2);
    r.east.dropFlashStreams();
    // Sent while the edge is disconnected: the region replays it after the edge's Last-Event-ID.
    r.east.flashSale("flash_sale.ended", { n: 3 });
    await eventually("the third event after the reconnect", () => client.events.length === 3);
    assert.deepEqual(r.east.state.flashLastEventIds, [null, "2"]);
    assert.deepEqual(client.events.map((e) => e.id), ["east:1", "east:2", "east:3"]);
  } finally {
    client.close();
    await r.close();
  }
});

Deno.test("edge refuses flash-sale clients beyond its bound with 429 and Retry-After", async () => {
  const r = await rig({ clientsMax: 2 });
  const clients = [await sseClient(r.url), await sseClient(r.url, { "x-bv-region": "west" })];
  try {
    const refused = await fetch(`${r.url}/sse/flash-sales`);
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.equal((await refused.json()).code, "COMMON.RATE_LIMITED");
  } finally {
    for (const client of clients) client.close();
    await r.close();
  }
});

Deno.test("one client may hold clientStreamsMax flash-sale streams; others are unaffected; a closed one frees its place", async () => {
  const r = await rig({ clientStreamsMax: 2 });
  const from = (address: string) => ({ "x-forwarded-for": address });
  const clients = [await sseClient(r.url, from("203.0.113.7")), await sseClient(r.url, from("203.0.113.7"))];
  try {
    assert.deepEqual(clients.map((c) => c.response.status), [200, 200]);
    const refused = await fetch(`${r.url}/sse/flash-sales`, { headers: from("203.0.113.7") });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get("retry-after"), "5");
    assert.match((await refused.json()).detail, /already holds 2 flash sale streams/);
    const other = await sseClient(r.url, from("198.51.100.9"));
    clients.push(other);
    assert.equal(other.response.status, 200, "another client is not affected");
    clients[0].close();
    await eventually("the closed stream's place is free", async () => {
      const again = await sseClient(r.url, from("203.0.113.7"));
      clients.push(again);
      if (again.response.status === 200) return true;
      again.close();
      return false;
    });
  } finally {
    for (const client of clients) client.close();
    await r.close();
  }
});

Deno.test("clients of a region that goes out are disconnected and reconnect to a healthy region", async () => {
  const r = await rig();
  const clients: TestClient[] = [];
  try {
    const onEast = await sseClient(r.url);
    clients.push(onEast);
    r.east.flashSale("flash_sale.started", { n: 1 });
    await eventually("an event", () => onEast.events.length === 1);
    r.east.state.ready = false;
    await r.edge.checkHealth();
    await onEast.ended;
    const moved = await sseClient(r.url, { "last-event-id": "east:1" });
    clients.push(moved);
    assert.equal(moved.response.headers.get("x-bv-region"), "west", "the sticky region is out: failover");
  } finally {
    for (const client of clients) client.close();
    await r.close();
  }
});
