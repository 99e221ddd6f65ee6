/**
 * `deno task analytics:daily`: computes a day only once it is settled (else exit 75, unless
 * `--allow-unsettled`), and never opens an embedded data directory another process holds (exit 69).
 */
import assert from "node:assert/strict";
import { migrate } from "../../shared/ports/sql_migrate.ts";
import { ordersMigrations } from "../../regional/ecommerce/orders/mod.ts";
import { outboxMigrations } from "../../regional/ecommerce/outbox/mod.ts";
import { recordingIo, withEmbeddedDataDir } from "./_command_io_for_test.ts";
import { EXIT_DATA_DIR_IN_USE } from "./_cli.ts";
import { dailySalesCommand, EXIT_NOT_SETTLED } from "./daily_sales.ts";

Deno.test("analytics:daily just after midnight refuses yesterday (exit 75) before opening anything", async () => {
  const io = recordingIo([], "2025-03-02T00:01:00Z", () => assert.fail("the ports were opened"));
  assert.equal(await dailySalesCommand(io), EXIT_NOT_SETTLED);
  assert.deepEqual(io.printed.err, [
    'Day "2025-03-01" cannot be summarised before 2025-03-02T00:05:00.000Z (its end plus 5 min): payments and ' +
    "cancels stamped on it may still be committing until then; run it after that, or pass --allow-unsettled to " +
    "write a partial day (a later run replaces it)",
  ]);
  assert.deepEqual(io.opened, []);
  const today = recordingIo(["--date=2025-03-02"], "2025-03-02T12:00:00Z", () => assert.fail("opened"));
  assert.equal(await dailySalesCommand(today), EXIT_NOT_SETTLED, "today is never settled");
});

Deno.test({
  name: "analytics:daily computes a settled day, or an unsettled one with --allow-unsettled; exit 69 while the " +
    "data directory is held",
  // PGlite keeps handles the sanitizers would flag; every one is closed below.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withEmbeddedDataDir(async (embedded, dataDir) => {
      const platform = embedded("east");
      await migrate(await platform.sql(), [...outboxMigrations, ...ordersMigrations]);

      const held = recordingIo([], "2025-03-02T06:00:00Z", embedded);
      assert.equal(await dailySalesCommand(held), EXIT_DATA_DIR_IN_USE);
      assert.equal(held.printed.err.length, 1);
      assert.match(
        held.printed.err[0],
        new RegExp(
          `^Data directory "${dataDir}/embedded/east" is in use by pid ${Deno.pid} .*: the platform ` +
            "\\(deno task start\\) or another command is running with this data directory; stop it first",
        ),
      );
      await platform.close();

      const settled = recordingIo([], "2025-03-02T00:05:00Z", embedded);
      assert.equal(await dailySalesCommand(settled), 0, settled.printed.err.join("\n"));
      assert.match(settled.printed.out.at(-1) ?? "", /^daily_sales 2025-03-01 \(east\): 0 currencies written in/);

      const early = recordingIo(["--allow-unsettled"], "2025-03-02T00:01:00Z", embedded);
      assert.equal(await dailySalesCommand(early), 0, early.printed.err.join("\n"));
      assert.match(early.printed.out.at(-1) ?? "", /^daily_sales 2025-03-01 \(east\): 0 currencies written in/);
    }),
});

Deno.test("analytics:daily (the process) exits 69 and names the holder while the platform holds the directory", () =>
  withEmbeddedDataDir(async (embedded, dataDir) => {
    const platform = embedded("east");
    await platform.workQueue(); // Any file-backed store takes the directory.
    try {
      const script = new URL("./daily_sales.ts", import.meta.url).pathname;
      const { code, stderr } = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script, "--date=2025-03-01"],
        env: { BV_DATA_DIR: dataDir, BV_MODE: "embedded" },
        stdout: "null",
        stderr: "piped",
      }).output();
      const message = new TextDecoder().decode(stderr);
      assert.equal(code, EXIT_DATA_DIR_IN_USE, message);
      assert.match(message, /stop it first/);
    } finally {
      await platform.close();
    }
  }));
