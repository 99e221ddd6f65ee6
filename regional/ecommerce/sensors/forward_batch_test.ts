import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import { createSensorBatchApplier, createSensorBatchRoutes } from "./forward_batch.ts";
import { deltaRecord, migrateForSensors, productWithStock, stockOf } from "./_fixture_for_test.ts";

/**
 * Two databases: the writer's (served over real HTTP by the writer's route) and the replica's, which must
 * never be written by the replica's consumer.
 */
async function twoRegions(
  writerElsewhereInWriter: () => Promise<string | undefined> = () => Promise.resolve(undefined),
) {
  const [writerDb, replicaDb] = await Promise.all([createPgliteSql(), createPgliteSql()]);
  await Promise.all([migrateForSensors(writerDb), migrateForSensors(replicaDb)]);
  let nudges = 0;
  const routes = createSensorBatchRoutes({
    sql: writerDb,
    writerElsewhere: writerElsewhereInWriter,
    nudgeOutbox: () => nudges++,
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, routes.fetch);
  const applier = createSensorBatchApplier({
    sql: replicaDb,
    region: "west",
    writerElsewhere: () => Promise.resolve("east"),
    serviceUrlOf: (region) => region === "east" ? `http://127.0.0.1:${server.addr.port}` : undefined,
    timeoutMs: 5_000,
  });
  return {
    writerDb,
    replicaDb,
    applier,
    nudges: () => nudges,
    close: async () => {
      await server.shutdown();
      await Promise.all([writerDb.close(), replicaDb.close()]);
    },
  };
}

Deno.test("a replica's sensor batch is applied once in the writer's database and never in its own", async () => {
  const regions = await twoRegions();
  try {
    const inWriter = await productWithStock(regions.writerDb, 10);
    const inReplica = await productWithStock(regions.replicaDb, 10);
    // Same sku in both (replication copies the catalog); the replica's row must stay untouched.
    await regions.replicaDb.query`update products set sku = ${inWriter.sku} where id = ${inReplica.id}`;
    const batch = [deltaRecord(inWriter.sku, "m-1", 5), deltaRecord(inWriter.sku, "m-2", -3)];
    const first = await regions.applier(batch);
    assert.deepEqual([first.applied, first.duplicates, first.rejected.length], [2, 0, 0]);
    assert.deepEqual(await stockOf(regions.writerDb, inWriter.id), { onHand: 12, adjustments: 2 });
    assert.equal(regions.nudges(), 1);
    // A redelivery (the replica crashed before committing its offsets) is recognised by the writer's ledger.
    const again = await regions.applier(batch);
    assert.deepEqual([again.applied, again.duplicates], [0, 2]);
    assert.deepEqual(await stockOf(regions.writerDb, inWriter.id), { onHand: 12, adjustments: 2 });
    assert.deepEqual(await stockOf(regions.replicaDb, inReplica.id), { onHand: 10, adjustments: 0 });
  } finally {
    await regions.close();
  }
});

Deno.test("a delta the writer rejects comes back as that record's problem, so the replica dead-letters it", async () => {
  const regions = await twoRegions();
  try {
    const product = await productWithStock(regions.writerDb, 1);
    const ok = deltaRecord(product.sku, "m-ok", 1);
    const unknown = deltaRecord("NO-SUCH-SKU", "m-unknown", 1);
    const outcome = await regions.applier([ok, unknown]);
    assert.equal(outcome.applied, 1);
    assert.equal(outcome.rejected.length, 1);
    assert.equal(outcome.rejected[0].record, unknown);
    assert.equal(outcome.rejected[0].error.code, "ECOMMERCE.PRODUCT_NOT_FOUND");
  } finally {
    await regions.close();
  }
});

Deno.test("a target that is a replica itself refuses the batch, and the consumer's applier throws (redelivery)", async () => {
  const regions = await twoRegions(() => Promise.resolve("west"));
  try {
    const product = await productWithStock(regions.writerDb, 1);
    await assert.rejects(regions.applier([deltaRecord(product.sku, "m-1", 1)]), /answered 421/);
    assert.deepEqual(await stockOf(regions.writerDb, product.id), { onHand: 1, adjustments: 0 });
  } finally {
    await regions.close();
  }
});
