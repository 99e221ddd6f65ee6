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

/** Resolves on the CONNACK; rejects (and ends the client) on an error or after `timeoutMs`. */
export function connected(client: mqtt.MqttClient, timeoutMs: number, url: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (error: Error) => {
      cleanup();
      client.end(true);
      reject(new Error(`Cannot connect to MQTT at ${url}: ${error.message}`, { cause: error }));
    };
    const timer = setTimeout(() => fail(new Error(`no CONNACK within ${timeoutMs} ms`)), timeoutMs);
    const onConnect = () => {
      cleanup();
      resolve();
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
