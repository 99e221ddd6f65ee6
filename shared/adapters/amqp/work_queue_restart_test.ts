/**
 * Restarts the shared RabbitMQ (`rabbitmqctl stop_app && start_app`), so it only runs when asked:
 * `BV_TEST_BROKER_RESTARTS=1 deno test -A shared/adapters/amqp/work_queue_restart_test.ts` (~15–25 s).
 * Other users of the broker see a short outage.
 */
import assert from "node:assert/strict";
import { delay, waitFor } from "../../ports/contract/_wait_for.ts";
import { createTestVhost, rabbitmqctl } from "../../testing/rabbit_vhost.ts";
import { uniqueName } from "../../testing/unique.ts";
import { createAmqpWorkQueue } from "./mod.ts";

const enabled = Deno.env.get("BV_TEST_BROKER_RESTARTS") === "1";
const publishersCount = 3;
/** Long enough to ride out the restart: publish() must wait for the broker, not fail. */
const publishTimeoutMs = 30_000;

Deno.test({
  name: "[amqp] work queue loses no confirmed message while RabbitMQ restarts",
  ignore: !enabled,
  async fn() {
    const vhost = await createTestVhost();
    const queue = createAmqpWorkQueue({ url: vhost.url, connectTimeoutMs: 3_000, publishTimeoutMs });
    try {
      const name = uniqueName("restart");
      await queue.declare({ name, retryDelaysMs: [100] });
      const consumed = new Set<string>();
      let deliveries = 0;
      await queue.consume(name, async (message) => {
        deliveries++;
        await delay(2); // Keeps some messages in flight (unacked) when the broker stops.
        consumed.add(message.id);
      }, { prefetch: 5 });

      const confirmed = new Set<string>();
      const failures: string[] = [];
      let publishing = true;
      let sequence = 0;
      const publishers = Array.from({ length: publishersCount }, async () => {
        while (publishing) {
          const id = `m-${++sequence}`;
          try {
            await queue.publish(name, `body of ${id}`, { id });
            confirmed.add(id);
          } catch (error) {
            failures.push(`${id}: ${error instanceof Error ? error.message : error}`);
          }
        }
      });

      await delay(500);
      const confirmedBeforeStop = confirmed.size;
      const stoppedAtMs = Date.now();
      await rabbitmqctl("stop_app");
      await delay(1_000);
      await rabbitmqctl("start_app");
      await rabbitmqctl("await_startup");
      const outageMs = Date.now() - stoppedAtMs;
      const confirmedAtRestart = confirmed.size;
      await waitFor("publishing to resume after the restart", () => confirmed.size > confirmedAtRestart + 50, {
        timeoutMs: 20_000,
      });
      publishing = false;
      await Promise.all(publishers);

      await waitFor("every confirmed message to be consumed", () => [...confirmed].every((id) => consumed.has(id)), {
        timeoutMs: 20_000,
        intervalMs: 50,
      });
      console.log(
        `restart: outage ${outageMs} ms; ${confirmedBeforeStop} confirmed before the stop, ${confirmed.size} in all; ` +
          `${deliveries} deliveries for ${consumed.size} distinct messages; ${failures.length} publish failures`,
      );
      assert.ok(confirmedBeforeStop > 0 && confirmed.size > confirmedBeforeStop);
      assert.deepEqual(failures, [], "publish() waits out the restart instead of failing");
    } finally {
      // Whatever happened, leave the broker running for everyone else.
      await rabbitmqctl("start_app").catch((error) => console.error(error));
      await rabbitmqctl("await_startup").catch((error) => console.error(error));
      await queue.close();
      await vhost.drop();
    }
  },
});
