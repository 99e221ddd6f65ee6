import assert from "node:assert/strict";
import { z } from "zod";
import {
  eventIdOf,
  plainSensorPayloadOf,
  readSensorMessage,
  SENSOR_PAYLOAD_BYTES_MAX,
  sensorPayloadSchema,
} from "./sensor_delta.ts";

const encode = (text: string) => new TextEncoder().encode(text);
const message = (payload: string | Uint8Array, topic = "iot/inventory/SKU-1/delta", userProperties = {}) => ({
  topic,
  payload: typeof payload === "string" ? encode(payload) : payload,
  userProperties,
});

async function reasonOf(m: ReturnType<typeof message>): Promise<string> {
  const read = await readSensorMessage(m);
  assert.equal(read.ok, false, "expected a rejection");
  return read.ok ? "" : read.reason;
}

Deno.test("readSensorMessage() accepts the seed's payload and takes the sku from the topic", async () => {
  const read = await readSensorMessage(message('{"delta": -2, "reason": "SENSOR"}'));
  assert.ok(read.ok);
  assert.equal(read.value.sku, "SKU-1");
  assert.equal(read.value.delta, -2);
  assert.equal(read.value.reason, "SENSOR");
});

Deno.test("readSensorMessage() refuses malformed payloads with a reason that says what to send", async () => {
  const cases: [string, RegExp][] = [
    ["{not json", /not UTF-8 JSON/],
    ['{"delta": "-2", "reason": "SENSOR"}', /delta/],
    ['{"delta": 1.5, "reason": "SENSOR"}', /delta/],
    ['{"delta": 0, "reason": "SENSOR"}', /must not be 0/],
    ['{"delta": 10001, "reason": "SENSOR"}', /delta/],
    ['{"delta": -2}', /reason/],
    [`{"delta": -2, "reason": "${"x".repeat(65)}"}`, /reason/],
    ['{"delta": -2, "reason": "SENSOR", "price": 1}', /price/],
    ['{"delta": -2, "reason": "SENSOR", "seq": -1}', /seq/],
    ['{"delta": -2, "reason": "a\\u0000b"}', /control characters/],
    ['{"delta": -2, "reason": "a\\u007fb"}', /control characters/],
    ['{"delta": -2, "reason": "a\\u009bb"}', /control characters/],
    ["[1,2]", /payload/],
  ];
  for (const [payload, expected] of cases) {
    assert.match(await reasonOf(message(payload)), expected, payload);
  }
});

Deno.test("readSensorMessage() refuses oversized, non-UTF-8 payloads and bad topics", async () => {
  const big = `{"delta": 1, "reason": "${"x".repeat(SENSOR_PAYLOAD_BYTES_MAX)}"}`;
  assert.match(await reasonOf(message(big)), /at most 1024/);
  assert.match(await reasonOf(message(new Uint8Array([0xff, 0xfe]))), /not UTF-8 JSON/);
  assert.match(await reasonOf(message("{}", "iot/inventory/-bad/delta")), /Sku "-bad"/);
  assert.match(await reasonOf(message("{}", "iot/inventory/a/b/delta")), /not iot\/inventory\/\{sku\}\/delta/);
  const refused = await readSensorMessage(message("nope", "iot/inventory/SKU-9/delta"));
  assert.ok(!refused.ok && refused.sku === "SKU-9", "a readable sku is kept as the dead letter's key");
});

Deno.test("a redelivered message with a seq gets the same message id; another seq gets another", async () => {
  const payload = '{"delta": -1, "reason": "SENSOR", "seq": 7, "deviceId": "shelf-3"}';
  const first = await readSensorMessage(message(payload));
  const again = await readSensorMessage(message(payload));
  const reordered = await readSensorMessage(
    message('{"seq": 7, "deviceId": "shelf-3", "reason": "SENSOR", "delta": -1}'),
  );
  const next = await readSensorMessage(message('{"delta": -1, "reason": "SENSOR", "seq": 8, "deviceId": "shelf-3"}'));
  const otherDevice = await readSensorMessage(message('{"delta": -1, "reason": "SENSOR", "seq": 7, "deviceId": "b"}'));
  assert.ok(first.ok && again.ok && reordered.ok && next.ok && otherDevice.ok);
  assert.match(first.value.messageId, /^seq:[0-9a-f]{64}$/);
  assert.equal(again.value.messageId, first.value.messageId);
  assert.equal(reordered.value.messageId, first.value.messageId);
  assert.notEqual(next.value.messageId, first.value.messageId);
  assert.notEqual(otherDevice.value.messageId, first.value.messageId);
});

Deno.test("a reading with seq but no deviceId is refused: two devices' seq would share ids", async () => {
  // Two shelves of one product, each counting its own seq: one id for both would lose a reading for good.
  assert.match(
    await reasonOf(message('{"delta": -1, "reason": "SENSOR", "seq": 7}')),
    /"seq" but no "deviceId".*send "deviceId"/,
  );
  // The seed's payload has neither, and stays valid; so do seq with a device id, and seq with a message-id.
  assert.ok((await readSensorMessage(message('{"delta": -2, "reason": "SENSOR"}'))).ok);
  assert.ok((await readSensorMessage(message('{"delta": -1, "reason": "SENSOR", "seq": 7, "deviceId": "a"}'))).ok);
  const props = { "message-id": "dev-42/7" };
  assert.ok((await readSensorMessage(message('{"delta": -1, "reason": "SENSOR", "seq": 7}', undefined, props))).ok);
});

Deno.test("an MQTT 5 message-id property names the message whatever the payload", async () => {
  const props = { "message-id": "dev-42/000123" };
  const a = await readSensorMessage(message('{"delta": -1, "reason": "SENSOR", "seq": 1}', undefined, props));
  const b = await readSensorMessage(message('{"delta": -1, "reason": "SENSOR"}', undefined, props));
  const otherSku = await readSensorMessage(
    message('{"delta": -1, "reason": "SENSOR"}', "iot/inventory/X/delta", props),
  );
  assert.ok(a.ok && b.ok && otherSku.ok);
  assert.match(a.value.messageId, /^mid:/);
  assert.equal(a.value.messageId, b.value.messageId);
  assert.notEqual(otherSku.value.messageId, a.value.messageId, "ids are scoped by sku");
  const valid = '{"delta": -1, "reason": "SENSOR"}';
  assert.match(await reasonOf(message(valid, undefined, { "message-id": "x".repeat(129) })), /message-id/);
});

Deno.test("identical readings without seq or message-id stay two adjustments", async () => {
  const payload = '{"delta": -1, "reason": "SENSOR"}';
  const a = await readSensorMessage(message(payload));
  const b = await readSensorMessage(message(payload));
  assert.ok(a.ok && b.ok);
  assert.match(a.value.messageId, /^rcv:/);
  assert.notEqual(a.value.messageId, b.value.messageId);
});

Deno.test("eventIdOf() is a deterministic UUID the envelope accepts", async () => {
  const id = await eventIdOf("seq:abc");
  assert.equal(await eventIdOf("seq:abc"), id);
  assert.notEqual(await eventIdOf("seq:abd"), id);
  assert.ok(z.uuid().safeParse(id).success, id);
});

Deno.test("the plain-payload fast path accepts nothing the schema refuses, and returns what the schema returns", () => {
  const payloads: unknown[] = [
    { delta: -2, reason: "SENSOR" },
    { delta: 3, reason: "  padded  ", seq: 0, deviceId: "shelf-3" },
    { delta: 10_000, reason: "x".repeat(64) },
    { delta: -10_000, reason: ` ${"x".repeat(64)} ` },
    { delta: 1, reason: "x", seq: Number.MAX_SAFE_INTEGER },
    { delta: 1, reason: "x", seq: -0 },
    { delta: 1, reason: "ünïcode ✓" },
    // Each of these must be left to the schema.
    { delta: 0, reason: "x" },
    { delta: -0, reason: "x" },
    { delta: 1.5, reason: "x" },
    { delta: 10_001, reason: "x" },
    { delta: "1", reason: "x" },
    { delta: Infinity, reason: "x" },
    { delta: 1, reason: "" },
    { delta: 1, reason: "   " },
    { delta: 1, reason: "x".repeat(65) },
    { delta: 1, reason: "a\u0000b" },
    { delta: 1, reason: "a\u001fb" },
    // DEL and C1 controls: the event schema refuses them, so the bridge must too (not the consumer, later).
    { delta: 1, reason: "x\u007f" },
    { delta: 1, reason: "x\u0085y" },
    { delta: 1, reason: "x", seq: -1 },
    { delta: 1, reason: "x", seq: 1.5 },
    { delta: 1, reason: "x", seq: Number.MAX_SAFE_INTEGER + 1 },
    { delta: 1, reason: "x", seq: null },
    { delta: 1, reason: "x", deviceId: "" },
    { delta: 1, reason: "x", deviceId: "has space" },
    { delta: 1, reason: "x", deviceId: "x".repeat(65) },
    { delta: 1, reason: "x", price: 1 },
    JSON.parse('{"delta": 1, "reason": "x", "__proto__": {"seq": 5}}'),
    { reason: "x" },
    [1, 2],
    null,
    "text",
  ];
  for (const payload of payloads) {
    const fast = plainSensorPayloadOf(payload);
    const schema = sensorPayloadSchema.safeParse(payload);
    if (fast !== undefined) {
      assert.ok(schema.success, `fast path accepted what the schema refuses: ${JSON.stringify(payload)}`);
      assert.deepEqual(fast, schema.data, JSON.stringify(payload));
    }
  }
  // And it does take the plain ones (the point of it).
  assert.ok(plainSensorPayloadOf(payloads[0]) !== undefined && plainSensorPayloadOf(payloads[1]) !== undefined);
});

Deno.test("readSensorMessage() draws a nonce only for readings without seq or message-id", async () => {
  const seqPayload = '{"delta": -1, "reason": "S", "seq": 1, "deviceId": "d"}';
  const withSeq = await readSensorMessage(message(seqPayload), "nonce-a");
  const withSeqOtherNonce = await readSensorMessage(message(seqPayload), "nonce-b");
  const plainA = await readSensorMessage(message('{"delta": -1, "reason": "S"}'), "nonce-a");
  const plainAagain = await readSensorMessage(message('{"delta": -1, "reason": "S"}'), "nonce-a");
  assert.ok(withSeq.ok && withSeqOtherNonce.ok && plainA.ok && plainAagain.ok);
  assert.equal(withSeq.value.messageId, withSeqOtherNonce.value.messageId);
  assert.equal(plainA.value.messageId, plainAagain.value.messageId, "the given nonce is used");
});

Deno.test("readSensorMessage() reads ASCII and UTF-8 payloads alike, a BOM too, and refuses broken UTF-8", async () => {
  const ascii = await readSensorMessage(message('{"delta": -1, "reason": "plain"}'));
  const utf8 = await readSensorMessage(message('{"delta": -1, "reason": "Regal ü ✓"}'));
  const bom = await readSensorMessage(
    message(new Uint8Array([0xef, 0xbb, 0xbf, ...encode('{"delta": 1, "reason": "b"}')])),
  );
  assert.ok(ascii.ok && utf8.ok && bom.ok);
  assert.equal(ascii.value.reason, "plain");
  assert.equal(utf8.value.reason, "Regal ü ✓");
  assert.equal(bom.value.reason, "b");
  const broken = new Uint8Array([...encode('{"delta": 1, "reason": "'), 0xc3, 0x28, ...encode('"}')]);
  assert.match(await reasonOf(message(broken)), /not UTF-8 JSON/);
});
