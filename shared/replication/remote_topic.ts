/**
 * @module
 * Logical names for MirrorMaker 2's copies of another region's topics. Under DefaultReplicationPolicy
 * (docs/ARCHITECTURE.md, "Cross-region events") the copy of `<prefix><topic>` made from region `east` is
 * `east.<prefix><topic>` in the other cluster: the region goes in front of the `BV_KAFKA_PREFIX` namespace,
 * so an ordinary logical name, which `prefixedEventLog` turns into `<prefix><name>`, cannot address it.
 * A consumer names the copy `remoteTopic("east", topic)` instead; `prefixedEventLog` maps that to the
 * physical copy and hands its records back under the same logical name.
 *
 * The logical name holds a `:`, a character Kafka topic names cannot contain (`[a-zA-Z0-9._-]`), so no
 * ordinary topic is ever taken for a remote one (`east.ecommerce.x.v1` stays an ordinary, prefixed name).
 * Only an event log wrapped by `prefixedEventLog` translates it (every infra event log is, with its prefix,
 * even an empty one); Kafka refuses it unwrapped, and the embedded log would treat it as a topic of its own
 * (nothing mirrors into that one: the embedded mirror copies into the same topic name instead).
 */

/** Separates the source region from the topic in a logical remote name; never part of a Kafka topic name. */
const REMOTE_SEPARATOR = ":";

/** A MirrorMaker alias: `east`, `west` (no dot, since `.` separates the alias from the topic in the copy). */
const REGION_PATTERN = /^[a-z0-9_-]+$/;

/** The source region and the source's logical topic of a remote topic name. */
export interface RemoteTopic {
  readonly region: string;
  readonly topic: string;
}

/**
 * The logical name of `region`'s MirrorMaker copy of `topic` (a logical name, without the namespace
 * prefix), e.g. `remoteTopic("east", "ecommerce.order.order.paid.v1")`.
 */
export function remoteTopic(region: string, topic: string): string {
  if (!REGION_PATTERN.test(region)) {
    throw new TypeError(`Region "${region}" is not a MirrorMaker alias; use lower-case letters, digits, _ or -`);
  }
  if (topic === "" || topic.includes(REMOTE_SEPARATOR)) {
    throw new TypeError(`Topic "${topic}" cannot be mirrored under a region; pass a local topic name`);
  }
  return `${region}${REMOTE_SEPARATOR}${topic}`;
}

/**
 * The parts of `name` when it is a {@linkcode remoteTopic} name, undefined for an ordinary topic; throws a
 * TypeError for a name with the separator that `remoteTopic` would not have made.
 */
export function parseRemoteTopic(name: string): RemoteTopic | undefined {
  const at = name.indexOf(REMOTE_SEPARATOR);
  if (at < 0) return undefined;
  const parts = { region: name.slice(0, at), topic: name.slice(at + 1) };
  try {
    remoteTopic(parts.region, parts.topic);
  } catch (error) {
    throw new TypeError(`Topic "${name}" is not a remote topic name: ${(error as Error).message}`);
  }
  return Object.freeze(parts);
}

/** The physical name of `topic` (logical, ordinary or remote) in a cluster namespaced by `prefix`. */
export function physicalTopicOf(topic: string, prefix: string): string {
  const remote = parseRemoteTopic(topic);
  // DefaultReplicationPolicy puts the source alias in front of the source's physical (prefixed) name.
  return remote ? `${remote.region}.${prefix}${remote.topic}` : `${prefix}${topic}`;
}
