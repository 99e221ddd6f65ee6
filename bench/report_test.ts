import assert from "node:assert/strict";
import { createLatencyHistogram, resultOf, statsFromHistogram } from "./harness.ts";
import { exitCodeOf, markdownTable, type ScenarioOutcome } from "./report.ts";

const memory = {
  rssBeforeBytes: 0,
  rssAfterBytes: 0,
  heapUsedBeforeBytes: 0,
  heapUsedAfterBytes: 0,
  heapUsedDeltaBytes: 0,
};

function statsOf(label: string, us: number) {
  const histogram = createLatencyHistogram();
  histogram.recordValue(us);
  return statsFromHistogram(label, histogram, { elapsedMs: us / 1000, rounds: 1, cappedRounds: 0, memory });
}

const ran: ScenarioOutcome = {
  scenario: "sql_x",
  description: "d",
  wallMs: 1,
  status: "ran",
  result: resultOf("sql_x", { subject: statsOf("port", 200), baseline: statsOf("raw", 100) }),
};
const skipped: ScenarioOutcome = {
  scenario: "kafka_x",
  description: "d",
  wallMs: 1,
  status: "skipped",
  reason: "Kafka at 127.0.0.1:9092 is not reachable | refused",
};
const failed: ScenarioOutcome = { ...skipped, scenario: "amqp_x", status: "failed", reason: "Error: boom" };

Deno.test("markdownTable() shows subject with ratios, then baseline, then one row per scenario not run", () => {
  const lines = markdownTable([ran, skipped]).split("\n");
  assert.equal(lines.length, 5);
  assert.match(lines[2], /^\| sql_x \| subject \| port \| 1 \| 200 \|.*\| 2\.00 \| 2\.00 \| 0\.50 \|$/);
  assert.match(lines[3], /^\| {2}\| baseline \| raw \| 1 \| 100 \|/);
  // A reason containing "|" must not break the table.
  assert.match(lines[4], /^\| kafka_x \| — \| SKIPPED: Kafka at 127\.0\.0\.1:9092 is not reachable \\\| refused \|/);
  for (const line of lines) assert.equal(line.split(/(?<!\\)\|/).length, lines[0].split("|").length);
});

Deno.test("exitCodeOf() is 0 when every scenario ran or was skipped, 1 when one failed", () => {
  assert.equal(exitCodeOf([ran, skipped]), 0);
  assert.equal(exitCodeOf([ran, failed, skipped]), 1);
  assert.equal(exitCodeOf([]), 0);
});
