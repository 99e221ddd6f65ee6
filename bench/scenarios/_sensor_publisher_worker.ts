/**
 * @module
 * Worker side of `mqtt_sensor_ingest`: a fleet of mqtt.js sensors (MQTT 5, clean sessions) publishing
 * `iot/inventory/{sku}/delta` at QoS 1 at a fixed total rate (open loop: a slot's publish starts whatever
 * the PUBACKs do, up to a bound of outstanding publishes), off the main thread so the pipeline under test
 * and the load generator use separate cores. Each payload carries `seq` and `deviceId` (the exactly-once
 * id rule) and its send time (epoch ms) in `reason`, so the receiving side can time each delta. Posts one
 * {@linkcode FleetReport} when every publish is acknowledged or failed.
 */
import mqtt from "mqtt";

/** What the main thread asks for. */
export interface FleetRequest {
  readonly url: string;
  readonly skus: readonly string[];
  readonly ratePerSec: number;
  readonly durationMs: number;
  readonly clients: number;
  /** Distinguishes this round's devices (and so their message ids) from earlier rounds'. */
  readonly round: string;
}

/** What the fleet did. `ackedDeltaSum` is the sum of the deltas the broker acknowledged. */
export interface FleetReport {
  readonly acked: number;
  readonly failed: number;
  /** Slots skipped because too many publishes were outstanding (the broker or the client fell behind). */
  readonly skipped: number;
  readonly ackedDeltaSum: number;
  readonly firstSendMs: number;
  readonly lastAckMs: number;
  readonly firstError?: string;
}

/** Publishes outstanding at once per client at most; beyond it a slot is skipped and counted. */
const OUTSTANDING_PER_CLIENT_MAX = 2_000;
const PUBLISH_TIMEOUT_MS = 15_000;

const scope = self as unknown as {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent<FleetRequest>) => void) | null;
  close(): void;
};

scope.onmessage = async (event) => {
  const request = event.data;
  try {
    scope.postMessage(await runFleet(request));
  } catch (error) {
    scope.postMessage({ error: error instanceof Error ? error.message : String(error) });
  }
};

async function runFleet(request: FleetRequest): Promise<FleetReport> {
  const clients = await Promise.all(Array.from({ length: request.clients }, (_, i) =>
    mqtt.connectAsync(request.url, {
      clientId: `bvbench-sensor-${request.round}-${i}`,
      protocolVersion: 5,
      clean: true,
      connectTimeout: 5_000,
      reconnectPeriod: 500,
    })));
  const outstanding = new Array<number>(clients.length).fill(0);
  let acked = 0, failed = 0, skipped = 0, ackedDeltaSum = 0, lastAckMs = 0;
  let firstError: string | undefined;
  const pending: Promise<void>[] = [];
  const intervalMs = 1000 / request.ratePerSec;
  const slots = Math.round(request.durationMs / intervalMs);
  const origin = performance.now();
  const firstSendMs = Date.now();
  for (let slot = 0; slot < slots;) {
    const waitMs = origin + slot * intervalMs - performance.now();
    if (waitMs > 0) {
      await new Promise((resolve) => setTimeout(resolve, waitMs));
      continue;
    }
    const c = slot % clients.length;
    if (outstanding[c] >= OUTSTANDING_PER_CLIENT_MAX) {
      skipped++;
      slot++;
      continue;
    }
    const sku = request.skus[slot % request.skus.length];
    // Mostly picks, a restock every 5th reading: stock stays far above 0.
    const delta = slot % 5 === 0 ? 3 : -1;
    const payload = JSON.stringify({
      delta,
      reason: `t${Date.now()}`,
      seq: Math.floor(slot / clients.length) + 1,
      deviceId: `${request.round}-${c}`,
    });
    outstanding[c]++;
    const publish = withTimeout(clients[c].publishAsync(`iot/inventory/${sku}/delta`, payload, { qos: 1 }))
      .then(() => {
        acked++;
        ackedDeltaSum += delta;
        lastAckMs = Date.now();
      }, (error: unknown) => {
        failed++;
        firstError ??= error instanceof Error ? error.message : String(error);
      })
      .finally(() => outstanding[c]--);
    pending.push(publish);
    slot++;
  }
  await Promise.all(pending);
  await Promise.allSettled(clients.map((client) => client.endAsync()));
  return { acked, failed, skipped, ackedDeltaSum, firstSendMs, lastAckMs, ...(firstError ? { firstError } : {}) };
}

function withTimeout<T>(work: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`No PUBACK within ${PUBLISH_TIMEOUT_MS} ms`)), PUBLISH_TIMEOUT_MS);
  });
  return Promise.race([work, timeout]).finally(() => clearTimeout(timer));
}
