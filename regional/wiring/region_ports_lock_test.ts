/**
 * The embedded ports hold their region's data directory alone: PGlite and the event log's files have one
 * writer, so a second opener (the platform started twice, an analytics command while it runs) is refused
 * until the holder closes or dies.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../../shared/config/config.ts";
import { LockHeldError } from "../../shared/runtime/mod.ts";
import { embeddedRegionPorts } from "./region_ports.ts";

async function withDataDir(test: (dataDir: string) => Promise<void>): Promise<void> {
  const dataDir = await Deno.makeTempDir({ prefix: "bv-region-lock-" });
  try {
    await test(dataDir);
  } finally {
    await Deno.remove(dataDir, { recursive: true });
  }
}

Deno.test({
  name: "embeddedRegionPorts() refuses a second opener of a region's data directory until the first closes",
  // PGlite keeps handles the sanitizers would flag; every one is closed below.
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () =>
    withDataDir(async (dataDir) => {
      const config = loadConfig({ BV_DATA_DIR: dataDir });
      const first = embeddedRegionPorts(config, "east");
      const second = embeddedRegionPorts(config, "east");
      try {
        const sql = await first.sql();
        await sql.exec("create table kept (n int); insert into kept values (1)");
        for (const open of [() => second.sql(), () => second.eventLog(), () => second.workQueue()]) {
          const refused = await open().then(() => assert.fail("a second opener was let in"), (error) => error);
          assert.ok(refused instanceof LockHeldError, String(refused));
          assert.match(
            refused.message,
            new RegExp(
              `^Data directory "${dataDir}/embedded/east" is in use by pid ${Deno.pid} .*: the platform ` +
                `\\(deno task start\\) or another command is running with this data directory; stop it first`,
            ),
          );
        }
        await second.close(); // Closing ports that were refused leaves the holder's lock alone.
        await first.eventLog();
        // Another region is another directory.
        const west = embeddedRegionPorts(config, "west");
        await west.workQueue();
        await west.close();

        await first.close();
        const [row] = await (await second.sql()).query<{ n: number }>`select n from kept`;
        assert.equal(row.n, 1, "the second opener sees the first one's data after it closed");
      } finally {
        await first.close();
        await second.close();
      }
    }),
});

Deno.test("embeddedRegionPorts() can be opened again in the same process after close (a restart)", () =>
  withDataDir(async (dataDir) => {
    const ports = embeddedRegionPorts(loadConfig({ BV_DATA_DIR: dataDir }), "east");
    for (let run = 0; run < 3; run++) {
      await ports.workQueue();
      await ports.close();
    }
    const again = embeddedRegionPorts(loadConfig({ BV_DATA_DIR: dataDir }), "east");
    await again.workQueue();
    await again.close();
  }));

Deno.test("embeddedRegionPorts() takes over the lock of a holder that died (stale pid)", () =>
  withDataDir(async (dataDir) => {
    const child = new Deno.Command("true", { stdout: "null", stderr: "null" }).spawn();
    await child.status;
    await Deno.mkdir(`${dataDir}/embedded/east`, { recursive: true });
    await Deno.writeTextFile(`${dataDir}/embedded/east/region.lock`, `${child.pid} crashed start=1\n`);
    const ports = embeddedRegionPorts(loadConfig({ BV_DATA_DIR: dataDir }), "east");
    await ports.workQueue();
    assert.match(await Deno.readTextFile(`${dataDir}/embedded/east/region.lock`), new RegExp(`^${Deno.pid} `));
    await ports.close();
  }));

Deno.test("embeddedRegionPorts() is refused while another process holds the directory, and let in once it was killed", () =>
  withDataDir(async (dataDir) => {
    const regionPortsUrl = new URL("./region_ports.ts", import.meta.url).href;
    const configUrl = new URL("../../shared/config/config.ts", import.meta.url).href;
    // The holder opens the region's ports and never closes them, as a running platform does.
    const holder = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `const { embeddedRegionPorts } = await import(${JSON.stringify(regionPortsUrl)});
         const { loadConfig } = await import(${JSON.stringify(configUrl)});
         await embeddedRegionPorts(loadConfig({ BV_DATA_DIR: ${JSON.stringify(dataDir)} }), "east").workQueue();
         console.log("holding");
         setInterval(() => {}, 1_000);`,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    try {
      const reader = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
      const { value } = await reader.read();
      assert.equal(value?.trim(), "holding");
      reader.releaseLock();
      const ports = embeddedRegionPorts(loadConfig({ BV_DATA_DIR: dataDir }), "east");
      const refused = await ports.workQueue().then(() => assert.fail("let in"), (error) => error);
      assert.ok(refused instanceof LockHeldError, String(refused));
      assert.equal(refused.pid, holder.pid);

      holder.kill("SIGKILL"); // A crash: its lock stays behind, naming a dead pid.
      await holder.status;
      await ports.workQueue();
      await ports.close();
    } finally {
      try {
        holder.kill("SIGKILL");
      } catch { /* Already gone. */ }
      await holder.status;
      await holder.stdout.cancel().catch(() => {});
    }
  }));
