import assert from "node:assert/strict";
import { createPgliteSql } from "../../../shared/adapters/pglite/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { RetryLaterError, retryLaterOnFailure } from "../../../shared/ports/retry_later.ts";
import { ConfigError } from "../../../shared/config/config.ts";
import { generateSecret, signatureHeaders } from "../webhooks/signing.ts";
import {
  createSensorBatchApplier,
  createSensorBatchRoutes,
  internalSigningKeyOf,
  SENSOR_BATCH_PATH,
  SensorBatchRefusedError,
} from "./forward_batch.ts";
import { deltaRecord, migrateForSensors, productWithStock, stockOf } from "./_fixture_for_test.ts";

/** The key every e-commerce process of these tests shares (BV_INTERNAL_SIGNING_KEY). */
const SIGNING_KEY = generateSecret();

/**
 * Two databases: the writer's (served over real HTTP by the writer's route) and the replica's, which must
 * never be written by the replica's consumer. `replicaKey` is the replica's signing key (the writer's unless a
 * test misconfigures it).
 */
async function twoRegions(
  writerElsewhereInWriter: () => Promise<string | undefined> = () => Promise.resolve(undefined),
  replicaKey = SIGNING_KEY,
) {
  const [writerDb, replicaDb] = await Promise.all([createPgliteSql(), createPgliteSql()]);
  await Promise.all([migrateForSensors(writerDb), migrateForSensors(replicaDb)]);
  let nudges = 0;
  const routes = createSensorBatchRoutes({
    sql: writerDb,
    writerElsewhere: writerElsewhereInWriter,
    nudgeOutbox: () => nudges++,
    signingKey: SIGNING_KEY,
  });
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, routes.fetch);
  const applier = createSensorBatchApplier({
    sql: replicaDb,
    region: "west",
    writerElsewhere: () => Promise.resolve("east"),
    serviceUrlOf: (region) => region === "east" ? `http://127.0.0.1:${server.addr.port}` : undefined,
    timeoutMs: 5_000,
    signingKey: replicaKey,
  });
  return {
    writerDb,
    replicaDb,
    applier,
    writerUrl: `http://127.0.0.1:${server.addr.port}${SENSOR_BATCH_PATH}`,
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

Deno.test("a batch the writer refuses for good is a counted failure; an outage, a 401 or a 421 is waited out", async () => {
  const answering = (status: number) =>
    createSensorBatchApplier({
      sql: undefined as unknown as Sql,
      region: "west",
      writerElsewhere: () => Promise.resolve("east"),
      serviceUrlOf: () => "http://writer.invalid",
      timeoutMs: 1_000,
      signingKey: SIGNING_KEY,
      fetch: () => Promise.resolve(new Response(`{"code":"X"}`, { status })),
    });
  const batch = [deltaRecord("SKU-1", "m-1", 1)];
  for (const status of [400, 413, 422]) {
    await assert.rejects(answering(status)(batch), SensorBatchRefusedError, `${status} is counted`);
  }
  // 401: the writer does not accept our signature (keys differ between regions): a configuration error.
  for (const status of [401, 421, 429, 500, 503, 504]) {
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

/** POSTs `body` to the writer's route with `headers` (signature headers, or none) and reads its answer. */
async function post(url: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: response.status, contentType: response.headers.get("content-type"), body: await response.json() };
}

/** Standard Webhooks headers of `body` signed with `key` at `timestampSec` (now by default). */
function signed(body: string, key: string, timestampSec = Math.floor(Date.now() / 1000)) {
  return signatureHeaders({ webhookId: crypto.randomUUID(), timestampSec, body }, [key]);
}

function assertRefused(answer: Awaited<ReturnType<typeof post>>, what: string): void {
  assert.equal(answer.status, 401, what);
  assert.equal(answer.contentType, "application/problem+json", what);
  assert.equal(answer.body.code, "COMMON.SIGNATURE_INVALID", what);
}

Deno.test("the writer refuses an unsigned sensor batch with 401 and changes no stock", async () => {
  const regions = await twoRegions();
  try {
    const product = await productWithStock(regions.writerDb, 10);
    const body = JSON.stringify({ records: [deltaRecord(product.sku, "m-unsigned", 5)] });
    assertRefused(await post(regions.writerUrl, body), "unsigned");
    assert.deepEqual(await stockOf(regions.writerDb, product.id), { onHand: 10, adjustments: 0 });
    assert.equal(regions.nudges(), 0);
  } finally {
    await regions.close();
  }
});

Deno.test("the writer refuses a batch signed with another key, tampered with or stale (401) and applies only a valid one", async () => {
  const regions = await twoRegions();
  try {
    const product = await productWithStock(regions.writerDb, 10);
    const body = JSON.stringify({ records: [deltaRecord(product.sku, "m-1", 5)] });
    const tampered = JSON.stringify({ records: [deltaRecord(product.sku, "m-2", 500)] });
    const nowSec = Math.floor(Date.now() / 1000);
    assertRefused(await post(regions.writerUrl, body, await signed(body, generateSecret())), "another key");
    assertRefused(await post(regions.writerUrl, tampered, await signed(body, SIGNING_KEY)), "tampered body");
    // Beyond the 5-minute window either way: a captured request cannot be replayed later, nor pre-dated.
    assertRefused(await post(regions.writerUrl, body, await signed(body, SIGNING_KEY, nowSec - 600)), "stale");
    assertRefused(await post(regions.writerUrl, body, await signed(body, SIGNING_KEY, nowSec + 600)), "future");
    assert.deepEqual(await stockOf(regions.writerDb, product.id), { onHand: 10, adjustments: 0 });
    assert.equal(regions.nudges(), 0);
    // The same body, signed with the shared key now, is applied; a replay inside the window changes nothing.
    const headers = await signed(body, SIGNING_KEY);
    const applied = await post(regions.writerUrl, body, headers);
    assert.equal(applied.status, 200);
    assert.deepEqual([applied.body.applied, applied.body.duplicates], [1, 0]);
    const replayed = await post(regions.writerUrl, body, headers);
    assert.deepEqual([replayed.status, replayed.body.applied, replayed.body.duplicates], [200, 0, 1]);
    assert.deepEqual(await stockOf(regions.writerDb, product.id), { onHand: 15, adjustments: 1 });
  } finally {
    await regions.close();
  }
});

Deno.test("a replica whose signing key differs from the writer's is refused (401), waited out and never applied", async () => {
  const regions = await twoRegions(undefined, generateSecret());
  try {
    const product = await productWithStock(regions.writerDb, 10);
    await assert.rejects(regions.applier([deltaRecord(product.sku, "m-1", 5)]), (error: unknown) => {
      assert.ok(!(error instanceof SensorBatchRefusedError), String(error));
      assert.match(String(error), /answered 401/);
      return true;
    });
    assert.deepEqual(await stockOf(regions.writerDb, product.id), { onHand: 10, adjustments: 0 });
  } finally {
    await regions.close();
  }
});

Deno.test("a missing or malformed signing key stops e-commerce at setup, naming the variable", () => {
  assert.throws(() => internalSigningKeyOf({ BV_INTERNAL_SIGNING_KEY: undefined }), (error: unknown) => {
    assert.ok(error instanceof ConfigError);
    assert.equal(error.variable, "BV_INTERNAL_SIGNING_KEY");
    return true;
  });
  const deps = { sql: undefined as unknown as Sql, writerElsewhere: () => Promise.resolve(undefined) };
  for (const signingKey of ["", "whsec_c2hvcnQ=", "not-a-whsec-key-but-long-enough-to-pass-a-length-check"]) {
    assert.throws(() => createSensorBatchRoutes({ ...deps, nudgeOutbox: () => {}, signingKey }), TypeError);
  }
});
