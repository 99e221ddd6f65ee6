/**
 * @module
 * Who holds the region's broker ports, and what the tooling may do about it: this checkout's broker is its
 * own; `./bv test` replaces another checkout's broker of this project; anything else is only named.
 */
import { brokerLayout, brokerPortVerdict, isSiblingBroker, type KafkaRegion } from "./_config.ts";
import { argvOf, portHolder, terminate } from "./_process.ts";

type ProgressLog = (line: string) => void;

/** How long `stopKafka` waits after SIGTERM before SIGKILL. */
export const BROKER_STOP_GRACE_MS_DEFAULT = 20_000;
const POLL_INTERVAL_MS = 500;

/**
 * One line for each port of the region's broker (client and controller) held by anything but this checkout's
 * broker: another checkout's, an unrelated program. Nothing is signalled; `infra:up` / `infra:down` print
 * the lines and exit non-zero.
 */
export async function kafkaPortProblems(region: KafkaRegion): Promise<string[]> {
  const layout = brokerLayout(region);
  const problems: string[] = [];
  for (const port of [layout.port, layout.controllerPort]) {
    const verdict = brokerPortVerdict(layout, port, await portHolder(port));
    if (verdict.kind === "foreign") problems.push(verdict.message);
  }
  return problems;
}

/**
 * For `./bv test`, whose tests kill and restart brokers and must own the data: stops a broker another checkout
 * of this project left on the region's port (`isSiblingBroker`: SIGTERM, SIGKILL after the stop grace) and
 * resolves true; resolves false when the port is free or holds this checkout's broker; throws, with one line
 * per port, when anything else holds it (never signalled).
 */
export async function stopForeignKafka(region: KafkaRegion, log: ProgressLog = console.log): Promise<boolean> {
  const layout = brokerLayout(region);
  const holder = await portHolder(layout.port);
  const argv = argvOf(holder?.cmdline ?? "");
  if (holder?.pid !== undefined && isSiblingBroker(layout, argv)) {
    const say: ProgressLog = (line) => log(`[kafka:${region}] ${line}`);
    say(`port ${layout.port} is held by another checkout's broker (pid ${holder.pid}): stopping it`);
    await terminate(holder.pid, {
      pidFile: `${layout.dir}/.not-this-checkout.pid`,
      mustContain: "kafka.Kafka",
      graceMs: BROKER_STOP_GRACE_MS_DEFAULT,
      pollIntervalMs: POLL_INTERVAL_MS,
      say,
    });
    return true;
  }
  const problems = await kafkaPortProblems(region);
  if (problems.length > 0) throw new Error(problems.join("\n"));
  return false;
}
