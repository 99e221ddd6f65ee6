import assert from "node:assert/strict";
import { clusterTemplates } from "./template.ts";
import { createPgliteSql } from "./mod.ts";

Deno.test("[pglite] a new database starts from the cached empty cluster; a corrupt one is replaced and the database still opens", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "bv_pglite_templates_" });
  const dataRoot = await Deno.makeTempDir({ prefix: "bv_pglite_data_" });
  try {
    const templates = clusterTemplates(new URL(`file://${cacheDir}/`));
    // The first new database makes the template and is made from it; a dataDir that does not exist yet is fine.
    const first = await createPgliteSql({ dataDir: `${dataRoot}/a`, templates });
    await first.exec("create table kept (id int primary key); insert into kept values (1)");
    await first.close();
    const [file] = [...Deno.readDirSync(cacheDir)].map((entry) => entry.name);
    assert.match(file, /^empty-cluster-.+\.tar\.gz$/);
    // The template is an empty cluster: what the first database wrote is not in the next one.
    const second = await createPgliteSql({ dataDir: `${dataRoot}/b`, templates });
    assert.deepEqual(await second.query`select count(*)::int as n from pg_tables where tablename = 'kept'`, [{ n: 0 }]);
    await second.close();

    // A torn or corrupt template (a disk full while it was written elsewhere) costs one initdb, not the database.
    await Deno.writeTextFile(`${cacheDir}/${file}`, "not a tarball");
    const fresh = clusterTemplates(new URL(`file://${cacheDir}/`));
    const third = await createPgliteSql({ dataDir: `${dataRoot}/c`, templates: fresh });
    assert.deepEqual(await third.query`select 1 as one`, [{ one: 1 }]);
    await third.close();
    // The corrupt file was discarded; the next new database makes a good one.
    const fourth = await createPgliteSql({ templates: fresh });
    await fourth.close();
    assert.ok((await Deno.stat(`${cacheDir}/${file}`)).size > 1_000_000, "a whole template again");

    // An existing cluster opens as it is, with its rows.
    const reopened = await createPgliteSql({ dataDir: `${dataRoot}/a`, templates });
    assert.deepEqual(await reopened.query`select id from kept`, [{ id: 1 }]);
    await reopened.close();
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
    await Deno.remove(dataRoot, { recursive: true });
  }
});
