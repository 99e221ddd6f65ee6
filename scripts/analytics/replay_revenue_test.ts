/**
 * `deno task analytics:replay`: ends within `--timeout-ms` (exit 2) even when its consumer can never join
 * the group, and never opens an embedded data directory another process holds (exit 69).
 */
import assert from "node:assert/strict";
import { createPgliteSql } from "../../shared/adapters/pglite/mod.ts";
import type { EventLog, Sql, Subscription } from "../../shared/ports/mod.ts";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import type { RegionPorts } from "../../regional/wiring/region_ports.ts";
import { analyticsMigrations } from "../../regional/ecommerce/analytics/mod.ts";
import { outboxMigrations } from "../../regional/ecommerce/outbox/mod.ts";
import { recordingIo, withEmbeddedDataDir } from "./_command_io_for_test.ts";
import { EXIT_DATA_DIR_IN_USE } from "./_cli.ts";
import { EXIT_FAILED, replayRevenueCommand } from "./replay_revenue.ts";

/** Ports whose event log accepts a subscription whose `ready` never settles (no group coordinator). */
function portsWithoutCoordinator(sql: Sql) {
  const events: string[] = [];
  const eventLog: EventLog = {
    ensureTopics: () => Promise.resolve(),
    publish: () => Promise.resolve(),
    subscribe: (): Promise<Subscription> =>
      Promise.resolve({
        ready: new Promise<void>(() => {}),
        close: () => Promise.resolve(void events.push("subscription closed")),
      }),
    ping: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const unused = () => Promise.reject(new Error("not used by the replay"));
  const ports: RegionPorts = {
    region: "east",
    mode: "infra",
    sql: () => Promise.resolve(sql),
    eventLog: () => Promise.resolve(eventLog),
    cache: unused,
    workQueue: unused,
    mqtt: unused,
    close: () => Promise.resolve(void events.push("ports closed")),
  };
  return { ports, events };
}

Deno.test({
  name: "analytics:replay exits 2 within --timeout-ms when its consumer never joins the group, and leaves it",
  // PGlite keeps handles the sanitizers would flag; it is closed below.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const sql = await createPgliteSql();
    try {
      await migrate(sql, [...outboxMigrations, ...analyticsMigrations]);
      const { ports, events } = portsWithoutCoordinator(sql);
      const io = recordingIo(["--timeout-ms=300", "--quiet-ms=50"], "2025-03-02T06:00:00Z", () => ports);
      const startedMs = performance.now();
      assert.equal(await replayRevenueCommand(io), EXIT_FAILED);
      assert.ok(performance.now() - startedMs < 3_000, `took ${Math.round(performance.now() - startedMs)} ms`);
      assert.deepEqual(io.printed.err, [
        "replay of east failed: The replay's consumer did not join the group within 300 ms; check that the " +
        "event log and its group coordinator are reachable, or raise the timeout",
      ]);
      assert.deepEqual(events, ["subscription closed", "ports closed"]);
    } finally {
      await sql.close();
    }
  },
});

Deno.test("analytics:replay exits 69 without opening the store while the platform holds the data directory", () =>
  withEmbeddedDataDir(async (embedded, dataDir) => {
    const platform = embedded("west");
    await platform.workQueue();
    try {
      const io = recordingIo(["--region=west"], "2025-03-02T06:00:00Z", embedded);
      assert.equal(await replayRevenueCommand(io), EXIT_DATA_DIR_IN_USE);
      assert.equal(io.printed.err.length, 1);
      assert.match(io.printed.err[0], new RegExp(`^Data directory "${dataDir}/embedded/west" is in use by pid `));
      assert.deepEqual(io.opened, ["west"]);
    } finally {
      await platform.close();
    }
  }));
