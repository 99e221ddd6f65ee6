/**
 * Where the cluster scripts put things (a checkout path with spaces) and which process on a region's port,
 * or in a `postmaster.pid`, they may stop: decided from made-up command lines, so no server is touched.
 */
import assert from "node:assert/strict";
import {
  clusterLayout,
  clusterPortVerdict,
  isPostmasterOf,
  REPO_ROOT,
  repoRootOf,
  siblingClusterDataDir,
} from "./_config.ts";
import { livePostmasterPid } from "./_process.ts";

/** A `/proc/<pid>/cmdline`: every argument ended by NUL. */
function cmdline(...argv: string[]): string {
  return argv.map((arg) => `${arg}\0`).join("");
}

const POSTGRES = "/usr/lib/postgresql/15/bin/postgres";

Deno.test("repoRootOf() maps a percent-encoded file URL to the real folder", () => {
  assert.equal(repoRootOf("file:///tmp/my%20proj/scripts/postgres/_config.ts"), "/tmp/my proj");
  assert.equal(repoRootOf("file:///work/main/scripts/postgres/_config.ts"), "/work/main");
  assert.ok(!REPO_ROOT.includes("%"), REPO_ROOT);
});

Deno.test("clusterPortVerdict() lets the tooling stop only this checkout's postmaster of that region", () => {
  const east = clusterLayout("east");
  const ours = { pid: 5151, cmdline: cmdline(POSTGRES, "-D", east.dataDir) };
  assert.deepEqual(clusterPortVerdict(east, undefined), { kind: "free" });
  assert.deepEqual(clusterPortVerdict(east, ours), { kind: "ours", pid: 5151 });
  for (
    const argv of [
      [POSTGRES, "-D", `${east.dataDir}/`], // pg_ctl drops a trailing slash; a BV_PG_DATA_ROOT may have one
      [POSTGRES, `-D${east.dataDir}`],
      ["postgres", `--pgdata=${east.dataDir}`, "-c", "port=5433"],
    ]
  ) assert.equal(clusterPortVerdict(east, { pid: 1, cmdline: cmdline(...argv) }).kind, "ours", argv.join(" "));
  for (
    const argv of [
      [POSTGRES, "-D", "/var/lib/postgresql/15/main", "-c", "config_file=/etc/postgresql/15/main/postgresql.conf"],
      [POSTGRES, "-D", "/work/other/.data/pg/east/data"], // another checkout's cluster
      [POSTGRES, "-D", `${east.dataDir}-old`],
      [POSTGRES, "-D", clusterLayout("west").dataDir],
      ["rsync", "-D", east.dataDir, "/backup"], // names our folder, is no server
      ["postgres: 15/main: checkpointer "], // a child: its command line is rewritten
      ["python3", "-m", "http.server", "5433"],
      [],
    ]
  ) assert.equal(clusterPortVerdict(east, { pid: 1, cmdline: cmdline(...argv) }).kind, "foreign", argv.join(" "));
});

Deno.test("clusterPortVerdict() names the port, the pid and its command in one line", () => {
  const east = clusterLayout("east");
  const holder = { pid: 2226, cmdline: cmdline(POSTGRES, "-D", "/var/lib/postgresql/15/main") };
  assert.deepEqual(clusterPortVerdict(east, holder), {
    kind: "foreign",
    message: `Port ${east.port} is held by pid 2226 (${POSTGRES} -D /var/lib/postgresql/15/main), not this ` +
      `checkout's PostgreSQL east cluster (${east.dataDir}); it was left running: stop it or set PG_EAST_PORT to ` +
      "another port",
  });
});

Deno.test("isPostmasterOf() compares whole arguments, so a data folder with spaces still matches", () => {
  const layout = { ...clusterLayout("east"), dataDir: "/tmp/my proj/.data/pg/east/data" };
  assert.ok(isPostmasterOf(layout, [POSTGRES, "-D", "/tmp/my proj/.data/pg/east/data"]));
  assert.ok(!isPostmasterOf(layout, [POSTGRES, "-D", "/tmp/my", "proj/.data/pg/east/data"]));
});

Deno.test("livePostmasterPid() ignores a postmaster.pid whose pid now runs another program", async () => {
  const dir = await Deno.makeTempDir({ prefix: "bv_pg_pid_" });
  try {
    const layout = { ...clusterLayout("east"), dataDir: `${dir}/data`, pidFile: `${dir}/data/postmaster.pid` };
    await Deno.mkdir(layout.dataDir);
    // As after a crash: the file names a pid the kernel has since given to something else (this test).
    await Deno.writeTextFile(layout.pidFile, `${Deno.pid}\n${layout.dataDir}\n1700000000\n5433\n`);
    assert.equal(await livePostmasterPid(layout), undefined);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("siblingClusterDataDir() names only another checkout's cluster of the same region, which ./bv test replaces", () => {
  const east = clusterLayout("east");
  assert.equal(
    siblingClusterDataDir(east, [POSTGRES, "-D", "/srv/another checkout/.data/pg/east/data"]),
    "/srv/another checkout/.data/pg/east/data",
  );
  assert.equal(
    siblingClusterDataDir(east, [POSTGRES, "-D/var/lib/postgresql/bitvelocity-1a2b3c/east/data/"]),
    "/var/lib/postgresql/bitvelocity-1a2b3c/east/data",
  );
  assert.equal(siblingClusterDataDir(east, [POSTGRES, "-D", east.dataDir]), undefined, "ours is not a sibling");
  assert.equal(
    siblingClusterDataDir(east, [POSTGRES, "-D", "/srv/another checkout/.data/pg/west/data"]),
    undefined,
    "west",
  );
  assert.equal(siblingClusterDataDir(east, [POSTGRES, "-D", "/var/lib/postgresql/15/main"]), undefined, "the system's");
  assert.equal(siblingClusterDataDir(east, ["python3", "-D", "/srv/another checkout/.data/pg/east/data"]), undefined);
});
