import assert from "node:assert/strict";
import {
  contextFromCarrier,
  currentTraceId,
  formatTraceparent,
  parseTraceparent,
  traceHeaders,
  withTraceContext,
} from "./trace_context.ts";

Deno.test("parseTraceparent() accepts the W3C form and rejects malformed or all-zero ids", () => {
  const valid = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
  assert.deepEqual(parseTraceparent(valid), {
    traceId: "0af7651916cd43dd8448eb211c80319c",
    spanId: "b7ad6b7169203331",
    sampled: true,
  });
  assert.equal(formatTraceparent(parseTraceparent(valid)!), valid);
  for (
    const bad of [
      undefined,
      "",
      "garbage",
      "00-00000000000000000000000000000000-b7ad6b7169203331-01",
      "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
    ]
  ) {
    assert.equal(parseTraceparent(bad), null, String(bad));
  }
});

Deno.test("an incoming traceparent is continued with a new span; headers carry it to the next hop", () => {
  const incoming = contextFromCarrier({
    TraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    "Correlation-Id": "order-42<script>",
  });
  assert.equal(incoming.traceId, "0af7651916cd43dd8448eb211c80319c");
  assert.notEqual(incoming.spanId, "b7ad6b7169203331");
  assert.equal(incoming.correlationId, "order-42script", "correlation ids are sanitised");
  withTraceContext(incoming, () => {
    assert.equal(currentTraceId(), incoming.traceId);
    const headers = traceHeaders();
    assert.equal(parseTraceparent(headers.traceparent)?.traceId, incoming.traceId);
    assert.equal(headers["correlation-id"], "order-42script");
  });
  assert.deepEqual(traceHeaders(), {}, "no context outside the request");
});

Deno.test("without a traceparent a new trace starts and the correlation id defaults to it", () => {
  const fresh = contextFromCarrier({});
  assert.match(fresh.traceId, /^[0-9a-f]{32}$/);
  assert.equal(fresh.correlationId, fresh.traceId);
});
