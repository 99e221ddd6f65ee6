/**
 * @module
 * Topic naming: `<domain>.<context>.<entity>.<eventType>.<version>` (for example
 * `ecommerce.order.order.created.v1`), all lower-case with `_` inside a segment. The dead-letter topic of a
 * topic is `<topic>.dlq` (see `dlqTopicOf` in the event-log port).
 */

const SEGMENT = "[a-z][a-z0-9_]*";
const TOPIC = new RegExp(`^(${SEGMENT})\\.(${SEGMENT})\\.(${SEGMENT})\\.(${SEGMENT})\\.v([1-9][0-9]*)$`);

export interface TopicName {
  readonly domain: string;
  readonly context: string;
  readonly entity: string;
  readonly eventType: string;
  readonly version: number;
}

/** Builds a topic name, rejecting segments that break the rule. */
export function topicName(parts: TopicName): string {
  const name = `${parts.domain}.${parts.context}.${parts.entity}.${parts.eventType}.v${parts.version}`;
  if (!TOPIC.test(name)) {
    throw new RangeError(
      `Topic "${name}" does not follow <domain>.<context>.<entity>.<eventType>.v<version> in lower case`,
    );
  }
  return name;
}

/** Parses a topic name; null when it does not follow the rule. */
export function parseTopicName(name: string): TopicName | null {
  const match = TOPIC.exec(name);
  if (!match) return null;
  return {
    domain: match[1],
    context: match[2],
    entity: match[3],
    eventType: match[4],
    version: Number(match[5]),
  };
}
