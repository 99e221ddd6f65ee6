import assert from "node:assert/strict";
import { ConfigError, loadConfig } from "../shared/config/config.ts";
import { edgeOptionsOf } from "./regions.ts";

Deno.test("edgeOptionsOf() takes the affinity TTL and pin limit from BV_EDGE_AFFINITY_*", () => {
  const options = edgeOptionsOf(loadConfig({ BV_EDGE_AFFINITY_TTL_MS: "60000", BV_EDGE_AFFINITY_ENTRIES_MAX: "500" }));
  assert.deepEqual(options.affinity, { ttlMs: 60_000, entriesMax: 500 });
  assert.deepEqual(edgeOptionsOf(loadConfig({})).affinity, { ttlMs: 300_000, entriesMax: 100_000 });
});

Deno.test("a malformed BV_EDGE_AFFINITY_* is refused at load, naming the variable", () => {
  assert.throws(() => loadConfig({ BV_EDGE_AFFINITY_TTL_MS: "0" }), (e) => {
    return e instanceof ConfigError && /BV_EDGE_AFFINITY_TTL_MS/.test(e.message);
  });
  assert.throws(() => loadConfig({ BV_EDGE_AFFINITY_ENTRIES_MAX: "many" }), (e) => {
    return e instanceof ConfigError && /BV_EDGE_AFFINITY_ENTRIES_MAX/.test(e.message);
  });
});
