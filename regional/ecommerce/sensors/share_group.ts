/**
 * @module
 * How a region's sensor bridge subscribes when the regions may share one MQTT broker: through the regions' common
 * shared-subscription group only when the broker IS one and the regions are linked (order replication: one writer,
 * a replica forwarding its batches to it), so each reading reaches one region and is applied to the one stock.
 * Unlinked regions each keep their own stock, and each must get every reading: a plain subscription.
 */

/** What {@linkcode sensorSharingOf} decides from. */
export interface SensorSharingInput {
  /** Both regions' bridges connect to one broker (`mqttBrokerShared`, regional/wiring/region_ports.ts). */
  readonly brokerShared: boolean;
  /** The region's `order_writer` row exists: its stock is the writer region's (orders/writer). */
  readonly linked: boolean;
  /** The group both regions use when they share, named alike in east and west. */
  readonly group: string;
}

/** `shareGroup` and `formerShareGroup` for the deps of `startSensorBridge`. */
export interface SensorSharing {
  readonly shareGroup?: string;
  readonly formerShareGroup?: string;
}

/** The bridge's share group when the regions share a broker and are linked; else plain, taking the group back. */
export function sensorSharingOf(input: SensorSharingInput): SensorSharing {
  if (!input.brokerShared) return {};
  // Unlinked on one broker (both regions on one PostgreSQL server, where start:infra turns replication off): each
  // region applies each reading to its own stock, so each needs all of them. The group is taken back in case the
  // session subscribed through it while the regions were linked.
  return input.linked ? { shareGroup: input.group } : { formerShareGroup: input.group };
}
