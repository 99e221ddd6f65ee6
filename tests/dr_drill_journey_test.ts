/**
 * Journey: `deno task dr:drill` end to end (east's processes and PostgreSQL killed under a load of orders
 * through the edge, west promoted, east re-synced). The shared east Kafka broker is left running here
 * (`--keep-kafka`) so the journey does not disturb what runs beside it; `deno task dr:drill` kills it too.
 */
import assert from "node:assert/strict";

Deno.test({
  name: "dr:drill fails east over to west with RPO 0 and RTO under 10 s, then re-syncs east to parity",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const output = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/dr_drill.ts", "--keep-kafka", "--warm-sec=4", "--after-sec=5"],
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(240_000),
    }).output();
    const text = new TextDecoder().decode(output.stdout) + new TextDecoder().decode(output.stderr);
    const summary =
      /DR drill (PASSED|FAILED): RTO ([\d.]+|n\/a) s .*RPO (\d+) acknowledged orders lost of (\d+), parity (\d+)\/(\d+)/
        .exec(text);
    assert.ok(summary, `no summary line in the drill's output:\n${text.slice(-3_000)}`);
    console.log(summary[0]);
    const [, verdict, rtoSec, lost, acked, east, west] = summary;
    assert.equal(output.code, 0, text.slice(-3_000));
    assert.equal(verdict, "PASSED");
    assert.equal(Number(lost), 0);
    assert.ok(Number(acked) > 50, `only ${acked} orders were acknowledged`);
    assert.ok(Number(rtoSec) < 10, `RTO ${rtoSec} s`);
    assert.equal(east, west);
  },
});
