import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { RetryLaterError, retryLaterOnFailure } from "../../../shared/ports/retry_later.ts";
import { createSensorBatchApplier, createSensorBatchRoutes, SensorBatchRefusedError } from "./forward_batch.ts";
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

Deno.test("a batch the writer refuses for good is a counted failure; an outage or a 421 is waited out", async () => {
  const answering = (status: number) =>
    createSensorBatchApplier({
      sql: undefined as unknown as Sql,
      region: "west",
      writerElsewhere: () => Promise.resolve("east"),
      serviceUrlOf: () => "http://writer.invalid",
      timeoutMs: 1_000,
      fetch: () => Promise.resolve(new Response(`{"code":"X"}`, { status })),
    });
  const batch = [deltaRecord("SKU-1", "m-1", 1)];
  for (const status of [400, 413, 422]) {
    await assert.rejects(answering(status)(batch), SensorBatchRefusedError, `${status} is counted`);
  }
  for (const status of [421, 429, 500, 503, 504]) {
    await assert.rejects(answering(status)(batch), (error: unknown) => {
      assert.ok(!(error instanceof SensorBatchRefusedError), `${status} is waited out`);
      // The consumer wraps it so: waited out, never counted or dead-lettered.
      return true;
    });
  }
  // And the consumer's rule turns exactly those into RetryLaterError.
  const classify = (error: unknown) =>
    retryLaterOnFailure("test", () => Promise.reject(error), (e) => e instanceof SensorBatchRefusedError);
  await assert.rejects(classify(new SensorBatchRefusedError("refused")), SensorBatchRefusedError);
  await assert.rejects(classify(new Error("503")), RetryLaterError);
});

Deno.test("the writer answers 400 for a batch whose statement fails on its data, 503 when its database is down", async () => {
  const regions = await twoRegions();
  try {
    const product = await productWithStock(regions.writerDb, 1);
    // A statement that fails on every try (here its table is gone: SQLSTATE 42P01).
    await regions.writerDb.exec("alter table inventory_adjustment rename to inventory_adjustment_gone");
    await assert.rejects(regions.applier([deltaRecord(product.sku, "m-1", 1)]), SensorBatchRefusedError);
    await regions.writerDb.exec("alter table inventory_adjustment_gone rename to inventory_adjustment");
    await regions.writerDb.close();
    await assert.rejects(regions.applier([deltaRecord(product.sku, "m-2", 1)]), (error: unknown) => {
      assert.ok(!(error instanceof SensorBatchRefusedError), String(error));
      assert.match(String(error), /answered 503/);
      return true;
    });
  } finally {
    await regions.close().catch(() => {});
  }
});
