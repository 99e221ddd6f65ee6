/**
 * @module
 * What a bench run produces: one outcome per selected scenario (ran, skipped, failed), the Markdown table
 * printed and saved beside the JSON, and the exit code rule.
 */
import type { ScenarioResult, Stats } from "./harness.ts";

interface OutcomeBase {
  readonly scenario: string;
  readonly description: string;
  /** Setup, measurement and teardown together. */
  readonly wallMs: number;
}

export type ScenarioOutcome =
  | OutcomeBase & { readonly status: "ran"; readonly result: ScenarioResult }
  /** The scenario's infrastructure was not reachable; not a failure. */
  | OutcomeBase & { readonly status: "skipped"; readonly reason: string }
  | OutcomeBase & { readonly status: "failed"; readonly reason: string };

/** Everything one `deno task bench` run writes to `bench/results/<time>.json`. */
export interface BenchReport {
  readonly startedAt: string;
  readonly wallMs: number;
  readonly command: string;
  readonly environment: { readonly deno: string; readonly os: string; readonly cpus: number };
  readonly outcomes: readonly ScenarioOutcome[];
}

/** 0 when every selected scenario ran or was skipped for unreachable infrastructure; 1 otherwise. */
export function exitCodeOf(outcomes: readonly ScenarioOutcome[]): number {
  return outcomes.every((outcome) => outcome.status !== "failed") ? 0 : 1;
}

const HEADER = [
  "Scenario",
  "Side",
  "What",
  "n",
  "p50 µs",
  "p90 µs",
  "p99 µs",
  "p99.9 µs",
  "max µs",
  "mean µs",
  "ops/s",
  "heap Δ MiB",
  "× p50",
  "× p99",
  "× ops/s",
];

/** The results table: two rows per scenario that ran (subject with the ratios, then baseline), one otherwise. */
export function markdownTable(outcomes: readonly ScenarioOutcome[]): string {
  const rows: string[][] = [HEADER, HEADER.map(() => "---")];
  for (const outcome of outcomes) {
    if (outcome.status !== "ran") {
      const text = `${outcome.status.toUpperCase()}: ${outcome.reason}`;
      rows.push([outcome.scenario, "—", text, ...HEADER.slice(3).map(() => "—")]);
      continue;
    }
    const { subject, baseline, ratio } = outcome.result;
    rows.push([
      outcome.scenario,
      "subject",
      ...statCells(subject),
      ...[ratio.p50, ratio.p99, ratio.throughput].map(times),
    ]);
    rows.push(["", "baseline", ...statCells(baseline), "", "", ""]);
  }
  return rows.map((cells) => `| ${cells.map(escapeCell).join(" | ")} |`).join("\n");
}

/** The whole Markdown file: how the run was made, the table, and how to read it. */
export function markdownReport(report: BenchReport): string {
  const skipped = report.outcomes.filter((o) => o.status !== "ran").length;
  return [
    `# Bench ${report.startedAt}`,
    "",
    `\`${report.command}\` — wall time ${(report.wallMs / 1000).toFixed(1)} s; Deno ${report.environment.deno}, ` +
    `${report.environment.os}, ${report.environment.cpus} CPUs; ${report.outcomes.length} scenario(s), ` +
    `${skipped} not run.`,
    "",
    markdownTable(report.outcomes),
    "",
    "× = subject ÷ baseline: above 1 for p50/p99 and below 1 for ops/s mean the port costs that much over its raw driver.",
    "",
    "## Scenarios",
    "",
    ...report.outcomes.map((o) => `- **${o.scenario}** (${(o.wallMs / 1000).toFixed(1)} s): ${o.description}`),
    "",
  ].join("\n");
}

function statCells(stats: Stats): string[] {
  return [
    stats.label + (stats.cappedRounds > 0 ? ` (time cap hit in ${stats.cappedRounds}/${stats.rounds} rounds)` : ""),
    String(stats.count),
    String(stats.p50Us),
    String(stats.p90Us),
    String(stats.p99Us),
    String(stats.p999Us),
    String(stats.maxUs),
    stats.meanUs.toFixed(1),
    stats.throughputOpsPerSec.toFixed(0),
    (stats.memory.heapUsedDeltaBytes / 2 ** 20).toFixed(1),
  ];
}

function times(ratio: number | null): string {
  return ratio === null ? "n/a" : ratio.toFixed(2);
}

function escapeCell(text: string): string {
  return text.replaceAll("|", "\\|").replaceAll("\n", " ");
}
