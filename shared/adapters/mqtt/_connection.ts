/**
 * @module
 * The MQTT client connection's life as the bus needs it: connected within a deadline, dropped on purpose so a
 * persistent session redelivers, and calls bounded in time. Private to the MQTT adapter.
 */
import type mqtt from "mqtt";

/** How long a closing connection may take to send what was written before the socket is cut. */
export const CLOSE_TIMEOUT_MS = 2_000;
/**
 * Drops the connection as a network failure would, for mqtt.js to reconnect (after `reconnectPeriodMs`) with
 * the session and its queued publishes intact: `client.reconnect()` would throw away mqtt.js' store of
 * unacknowledged publishes, and `end()` would stop the client. `end()` on the socket sends what is already
 * written — the PUBACKs of messages handled before — ahead of the FIN, which `destroy()` alone would discard.
 */
export function dropConnection(client: mqtt.MqttClient): void {
  const stream = client.stream;
  const cut = setTimeout(() => stream.destroy(), CLOSE_TIMEOUT_MS);
  stream.once("close", () => clearTimeout(cut));
  stream.end(() => stream.destroy());
}

/** Resolves with the CONNACK; rejects (and ends the client) on an error or after `timeoutMs`. */
export function connected(client: mqtt.MqttClient, timeoutMs: number, url: string): Promise<mqtt.IConnackPacket> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      cleanup();
      client.end(true);
      reject(new Error(`Cannot connect to MQTT at ${url}: ${error.message}`, { cause: error }));
    };
    const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    const onConnect = (connack: mqtt.IConnackPacket) => {
      cleanup();
      resolve(connack);
    };
    const cleanup = () => {
      clearTimeout(timer);
      client.off("connect", onConnect);
      client.off("error", fail);
    };
    client.on("connect", onConnect);
    client.on("error", fail);
  });
}

/** `promise`, or a rejection saying `message` once `timeoutMs` passed. */
export async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, message: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${message} within ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What a final close is reported with (`connectAs`' `onClosed`). */
export type OnClosed = (reason: string, how: { readonly takenOver: boolean }) => void;

/** Calls `onClosed` once, with the broker's DISCONNECT reason when it sent one, at the close that is final. */
export function watchClose(client: mqtt.MqttClient, onClosed: OnClosed, final: () => boolean): void {
  let reason = "connection closed";
  let takenOver = false;
  let called = false;
  const report = () => {
    if (called || !final()) return;
    called = true;
    onClosed(reason, { takenOver });
  };
  client.on("disconnect", (packet) => {
    const code = packet.reasonCode ?? 0;
    takenOver = code === 0x8e;
    reason = takenOver ? "session taken over (0x8e)" : `broker sent DISCONNECT 0x${code.toString(16)}`;
  });
  client.on("close", report);
  // Closed between the CONNACK and now: no close event is left to come.
  if (!client.connected) report();
}
