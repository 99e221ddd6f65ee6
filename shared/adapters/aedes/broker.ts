/**
 * @module
 * An embedded MQTT broker (aedes on a `node:net` server) for development and tests. Its persistence is in
 * memory: persistent sessions, their subscriptions and queued QoS 1 messages survive client reconnects for
 * as long as this process lives, and vanish with it. aedes 1.x speaks MQTT 3.1.1 only (its CONNECT handler
 * refuses protocol version 5), so clients must connect with `protocolVersion: 4`.
 */

import { createServer, type Server } from "node:net";
import { Aedes } from "aedes";
import { connectHostOf } from "../../config/config.ts";

/** Options for {@linkcode startEmbeddedMqttBroker}. */
export interface EmbeddedMqttBrokerOptions {
  /** @default "127.0.0.1" */
  readonly host?: string;
  /** 0 picks a free port; read it back from `url`. */
  readonly port: number;
}

/** A running embedded broker. */
export interface EmbeddedMqttBroker {
  /** `mqtt://host:port` with the port actually bound. */
  readonly url: string;
  /** The MQTT protocol version clients must use. */
  readonly protocolVersion: 4;
  /** Disconnects every client, then stops listening. */
  close(): Promise<void>;
}

/** Starts aedes and resolves once it listens. */
export async function startEmbeddedMqttBroker(
  options: EmbeddedMqttBrokerOptions,
): Promise<EmbeddedMqttBroker> {
  const host = options.host ?? "127.0.0.1";
  const broker = await Aedes.createBroker({
    // Bounds written down rather than inherited: clients must CONNECT within 10 s of opening a socket, and
    // a client that stops reading is dropped after 30 s instead of buffering without limit.
    connectTimeout: 10_000,
    drainTimeout: 30_000,
    // QoS 1 messages in flight to one client before aedes queues the rest in persistence.
    queueLimit: 42,
    heartbeatInterval: 60_000,
  });
  const server = createServer(broker.handle);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === "object" && address !== null ? address.port : options.port;
  return {
    url: `mqtt://${connectHostOf(host)}:${port}`,
    protocolVersion: 4,
    async close() {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await closeServer(server);
    },
  };
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
}
