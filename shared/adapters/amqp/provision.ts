/**
 * @module
 * RabbitMQ virtual hosts for isolation, through `rabbitmqctl` (the management plugin is not enabled on
 * these machines): the start script makes sure each region's vhost exists; tests make throw-away ones.
 * Each call takes about 0.5–2 s.
 */

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

/** Deletes `name` with everything in it. */
export async function dropVhost(name: string): Promise<void> {
  await rabbitmqctl("delete_vhost", name);
}
