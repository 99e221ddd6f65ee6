import assert from "node:assert/strict";
import { isTopicNotReadyYet, whenTopicServed } from "./_topic_served.ts";

Deno.test("whenTopicServed() retries a call while its partitions have no leader, and rethrows anything else at once", async () => {
  // As kafkajs reports a ListOffsets to a broker not yet leading a new topic's partition (seen in CI on readEnds).
  const notLeader = Object.assign(new Error("This server is not the leader for that topic-partition"), {
    type: "NOT_LEADER_FOR_PARTITION",
  });
  let calls = 0;
  const ends = await whenTopicServed(() => {
    calls++;
    return calls < 3 ? Promise.reject(notLeader) : Promise.resolve("ends");
  });
  assert.equal(ends, "ends");
  assert.equal(calls, 3);

  calls = 0;
  const other = new Error("SASL authentication failed");
  await assert.rejects(whenTopicServed(() => (calls++, Promise.reject(other))), (e) => e === other);
  assert.equal(calls, 1);
  // Wrapped by kafkajs's retrier: found through the cause chain.
  assert.ok(isTopicNotReadyYet({ name: "KafkaJSNumberOfRetriesExceeded", cause: notLeader }));
});
