/**
 * @module
 * Waiting out a topic whose partitions are not served yet: another component or process of the same start may
 * still be creating it, and a new topic's partitions (or one whose leader moved) take a moment to get a leader.
 * A retry reuses the client's cached metadata (kafkajs refreshes it on UNKNOWN_TOPIC_OR_PARTITION, not on
 * NOT_LEADER): enough for a broker still taking up leadership, as on the platform's one-broker clusters; a
 * leader that moved to another broker is found once the metadata ages out. Private to the Kafka adapter.
 */

/** Errors that mean "the topic exists but its partitions are not served yet". */
export function isTopicNotReadyYet(error: unknown): boolean {
  // kafkajs may wrap the protocol error (retries exceeded): look through the cause chain.
  for (
    let e = error as { type?: string; cause?: unknown; originalError?: unknown } | undefined, depth = 0;
    e && depth < 5;
    depth++
  ) {
    if (
      e.type === "UNKNOWN_TOPIC_OR_PARTITION" || e.type === "LEADER_NOT_AVAILABLE" ||
      e.type === "NOT_LEADER_FOR_PARTITION"
    ) {
      return true;
    }
    e = (e.cause ?? e.originalError) as typeof e;
  }
  return false;
}

/**
 * Attempts of a call whose topic is not served yet. Backoff 200 ms doubling, capped at 3.2 s: about 20 s in all
 * before the call's error is rethrown.
 */
const SERVED_ATTEMPTS_MAX = 9;

/** Runs `call`, again after a backoff while it fails with {@linkcode isTopicNotReadyYet}; bounded (~20 s). */
export async function whenTopicServed<T>(call: () => Promise<T>): Promise<T> {
  for (let attempt = 1;; attempt++) {
    try {
      return await call();
    } catch (error) {
      if (!isTopicNotReadyYet(error) || attempt >= SERVED_ATTEMPTS_MAX) throw error;
      await new Promise((resolve) => setTimeout(resolve, Math.min(100 * 2 ** attempt, 3_200)));
    }
  }
}
