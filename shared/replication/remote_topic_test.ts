import assert from "node:assert/strict";
import { parseRemoteTopic, physicalTopicOf, remoteTopic } from "./remote_topic.ts";

Deno.test("remoteTopic() refuses names it could not tell apart, and ordinary topics never parse as remote", () => {
  assert.equal(remoteTopic("west", "ecommerce.order.order.paid.v1"), "west:ecommerce.order.order.paid.v1");
  assert.deepEqual(parseRemoteTopic("west:ecommerce.order.order.paid.v1"), {
    region: "west",
    topic: "ecommerce.order.order.paid.v1",
  });
  for (const ordinary of ["east.ecommerce.order.order.paid.v1", "east", "east.p.t.v1", "t.v1.dlq"]) {
    assert.equal(parseRemoteTopic(ordinary), undefined, ordinary);
  }
  assert.throws(() => remoteTopic("", "t.v1"), TypeError);
  assert.throws(() => remoteTopic("east.west", "t.v1"), /Region "east.west" is not a MirrorMaker alias/);
  assert.throws(() => remoteTopic("east", ""), TypeError);
  assert.throws(() => remoteTopic("east", remoteTopic("west", "t.v1")), /cannot be mirrored under a region/);
  assert.throws(() => parseRemoteTopic("East:t.v1"), /Topic "East:t.v1" is not a remote topic name/);
  assert.throws(() => physicalTopicOf(":t.v1", "p."), TypeError);
});

Deno.test("physicalTopicOf() puts the region in front of the namespace, as MirrorMaker 2 names its copies", () => {
  assert.equal(
    physicalTopicOf(remoteTopic("east", "ecommerce.order.order.paid.v1"), "p."),
    "east.p.ecommerce.order.order.paid.v1",
  );
  assert.equal(
    physicalTopicOf(remoteTopic("east", "ecommerce.order.order.paid.v1"), ""),
    "east.ecommerce.order.order.paid.v1",
  );
  assert.equal(physicalTopicOf("ecommerce.order.order.paid.v1", "p."), "p.ecommerce.order.order.paid.v1");
});
