import assert from "node:assert/strict";
import { fakeRegion } from "./testing/fake_region.ts";
import { edgeTraceOf } from "./trace.ts";
import { createEdge } from "./worker.ts";

const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;
const INCOMING = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

Deno.test("edge continues a client's trace with its own span and keeps its correlation id, both ways", async () => {
  const east = fakeRegion("east");
  const edge = createEdge({ regions: [east] });
  try {
    const response = await edge.app.request("/api/v1/things", {
      headers: { traceparent: INCOMING, "correlation-id": "order-42" },
    });
    await response.body?.cancel();
    const sent = east.state.lastHeaders!;
    const [, traceId, spanId, flags] = TRACEPARENT.exec(sent.get("traceparent") ?? "")!;
    assert.equal(traceId, "4bf92f3577b34da6a3ce929d0e0e4736", "same trace");
    assert.notEqual(spanId, "00f067aa0ba902b7", "the edge is a hop: a span of its own");
    assert.equal(flags, "01");
    assert.equal(sent.get("correlation-id"), "order-42");
    assert.equal(response.headers.get("traceparent"), sent.get("traceparent"));
    assert.equal(response.headers.get("correlation-id"), "order-42");
  } finally {
    await east.close();
  }
});

Deno.test("edge starts a trace when the client sent none or a bad one; correlation id = trace id", async () => {
  const east = fakeRegion("east");
  const edge = createEdge({ regions: [east] });
  try {
    const seen = new Set<string>();
    for (
      const headers of [{} as Record<string, string>, {
        traceparent: "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
      }]
    ) {
      const response = await edge.app.request("/api/v1/things", { headers });
      await response.body?.cancel();
      const sent = east.state.lastHeaders!;
      const match = TRACEPARENT.exec(sent.get("traceparent") ?? "");
      assert.ok(match, `a valid traceparent reached the region: ${sent.get("traceparent")}`);
      assert.notEqual(match[1], "00000000000000000000000000000000");
      assert.equal(sent.get("correlation-id"), match[1]);
      assert.equal(response.headers.get("correlation-id"), match[1]);
      seen.add(match[1]);
    }
    assert.equal(seen.size, 2, "every request without a trace gets a new one");
  } finally {
    await east.close();
  }
});

Deno.test("edge puts the trace on its own answers too, and sanitises a client's correlation id", async () => {
  const east = fakeRegion("east");
  const edge = createEdge({ regions: [east] });
  try {
    await edge.checkHealth();
    // A region that cannot be reached: the edge answers 503 itself.
    await east.close();
    const response = await edge.app.request("/api/v1/things", {
      headers: { traceparent: INCOMING, "correlation-id": "a b<script>c" },
    });
    assert.equal(response.status, 503);
    await response.body?.cancel();
    assert.equal(response.headers.get("correlation-id"), "abscriptc");
    assert.equal(TRACEPARENT.exec(response.headers.get("traceparent") ?? "")?.[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(east.state.hits, 0);
  } finally {
    await edge.stop();
  }
});

Deno.test("edgeTraceOf bounds correlation ids and keeps the sampled flag", () => {
  const trace = edgeTraceOf(
    new Headers({ traceparent: INCOMING.replace(/01$/, "00"), "x-correlation-id": "x".repeat(500) }),
  );
  assert.equal(trace.correlationId.length, 128);
  assert.ok(trace.traceparent.endsWith("-00"));
});

Deno.test("every cache answer carries its own request's trace, never the one stored with the fill", async () => {
  const east = fakeRegion("east");
  east.state.versions.set("p1", 1);
  // Regions echo the trace they were sent; a stored copy of it must not reach later readers.
  east.state.answerHeaders = {
    "cache-control": "public, max-age=60",
    traceparent: "00-11111111111111111111111111111111-2222222222222222-01",
    "correlation-id": "fill-request",
  };
  const edge = createEdge({
    regions: [east],
    cache: { ttlMs: 60_000, staleWhileRevalidateMs: 0, entriesMax: 10, bytesMax: 1024 * 1024 },
  });
  try {
    const answers: Response[] = [];
    const conditionals: Record<string, string>[] = [{}, {}, { "if-none-match": "*" }];
    for (const [i, extra] of conditionals.entries()) {
      const headers = { traceparent: INCOMING.replace("4736", `473${i}`), "correlation-id": `reader-${i}`, ...extra };
      answers.push(await edge.app.request("/api/v1/products/p1", { headers }));
    }
    assert.deepEqual(answers.map((a) => a.headers.get("x-bv-cache")), ["MISS", "HIT", "HIT"]);
    assert.deepEqual(answers.map((a) => a.status), [200, 200, 304]);
    for (const [i, answer] of answers.entries()) {
      await answer.body?.cancel();
      // One value each (a duplicated header would read as "a, b").
      assert.equal(answer.headers.get("correlation-id"), `reader-${i}`);
      assert.equal(
        TRACEPARENT.exec(answer.headers.get("traceparent") ?? "")?.[1],
        `4bf92f3577b34da6a3ce929d0e0e473${i}`,
      );
    }
    assert.equal(east.state.hits, 1, "the second and third were hits");
  } finally {
    await edge.stop();
    await east.close();
  }
});

Deno.test("edgeTraceOf draws a fresh, well-formed span id for every request, across its random blocks", () => {
  const spans = new Set<string>();
  for (let i = 0; i < 2_000; i++) {
    const match = TRACEPARENT.exec(edgeTraceOf(new Headers()).traceparent);
    assert.ok(match, "well-formed");
    assert.notEqual(match[1], match[2].repeat(2), "trace and span ids are separate draws");
    spans.add(match[2]);
  }
  assert.equal(spans.size, 2_000);
});
