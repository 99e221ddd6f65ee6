/**
 * @module
 * Throw-away RabbitMQ vhosts for tests (one per test file: each `rabbitmqctl` call takes 0.5–2 s).
 * Provisioning itself lives in the amqp adapter (`shared/adapters/amqp/provision.ts`).
 */

import { dropVhost, ensureVhost, rabbitmqctl } from "../adapters/amqp/provision.ts";
import { realInfra } from "./real_infra.ts";
import { uniqueName } from "./unique.ts";

/** A fresh vhost for one test file: its AMQP URL and a `drop()` that deletes it with everything in it. */
export async function createTestVhost(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = uniqueName("bvtest");
  await ensureVhost(name);
  return {
    name,
    url: `${realInfra.amqpUrl.replace(/\/+$/, "")}/${encodeURIComponent(name)}`,
    drop: () => dropVhost(name),
  };
}

export { dropVhost, ensureVhost, rabbitmqctl };
