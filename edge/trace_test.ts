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
  east.state.ready = false;
  const edge = createEdge({ regions: [east] });
  try {
    await edge.checkHealth();
    const response = await edge.app.request("/api/v1/things", {
      headers: { traceparent: INCOMING, "correlation-id": "a b<script>c" },
    });
    assert.equal(response.status, 503);
    await response.body?.cancel();
    assert.equal(response.headers.get("correlation-id"), "abscriptc");
    assert.equal(TRACEPARENT.exec(response.headers.get("traceparent") ?? "")?.[1], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert.equal(east.state.hits, 0);
  } finally {
    await east.close();
  }
});

Deno.test("edgeTraceOf bounds correlation ids and keeps the sampled flag", () => {
  const trace = edgeTraceOf(
    new Headers({ traceparent: INCOMING.replace(/01$/, "00"), "x-correlation-id": "x".repeat(500) }),
  );
  assert.equal(trace.correlationId.length, 128);
  assert.ok(trace.traceparent.endsWith("-00"));
});
