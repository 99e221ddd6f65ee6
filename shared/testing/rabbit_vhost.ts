/**
 * @module
 * RabbitMQ virtual hosts for isolation: tests get a throw-away vhost, the platform's start script makes
 * sure its own exist. Uses `rabbitmqctl` (the management plugin is not enabled on these machines); each
 * call takes about 0.5–2 s, so create one vhost per test file, not per test.
 */

import { realInfra } from "./real_infra.ts";
import { uniqueName } from "./unique.ts";

/** Bound on one rabbitmqctl call; it normally takes 0.5–2 s. */
const rabbitmqctlTimeoutMs = 30_000;

/** Runs `rabbitmqctl <args>` and resolves with its stdout; rejects with its stderr on failure. */
export async function rabbitmqctl(...args: string[]): Promise<string> {
  const output = await new Deno.Command("rabbitmqctl", {
    args,
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(rabbitmqctlTimeoutMs),
  }).output();
  const decoder = new TextDecoder();
  if (!output.success) {
    const stderr = decoder.decode(output.stderr).trim();
    throw new Error(`rabbitmqctl ${args.join(" ")} failed (exit ${output.code}): ${stderr}`);
  }
  return decoder.decode(output.stdout);
}

/** Creates `name` if missing (add_vhost is idempotent) and gives `user` full permissions on it. */
export async function ensureVhost(name: string, options: { readonly user?: string } = {}): Promise<void> {
  await rabbitmqctl("add_vhost", name);
  await rabbitmqctl("set_permissions", "-p", name, options.user ?? "guest", ".*", ".*", ".*");
}

/** A fresh vhost for one test file: its AMQP URL and a `drop()` that deletes it with everything in it. */
export async function createTestVhost(): Promise<{ name: string; url: string; drop(): Promise<void> }> {
  const name = uniqueName("bvtest");
  await ensureVhost(name);
  return {
    name,
    url: `${realInfra.amqpUrl.replace(/\/+$/, "")}/${encodeURIComponent(name)}`,
    drop: async () => {
      await rabbitmqctl("delete_vhost", name);
    },
  };
}

/** Deletes `name` with everything in it. */
export async function dropVhost(name: string): Promise<void> {
  await rabbitmqctl("delete_vhost", name);
}
