/**
 * @module
 * `deno task test`: every check in one command, in this order —
 *   1. format check, lint, type check (`deno task verify`);
 *   2. Kafka up for both regions (fetched from Maven Central on first use), and each region's PostgreSQL
 *      cluster (scripts/postgres: initdb on first use);
 *   3. unit tests and both adapter contract suites (embedded and real), files in parallel;
 *   4. tests that restart a shared broker (`*_restart_test.ts`), alone;
 *   5. journeys under `tests/` (whole processes on real services), one file at a time.
 * Ends with `tests: N passed, M failed` (a failed verify step counts as one failure).
 */
import { REGIONS } from "../shared/config/config.ts";
import { ensureKafka, stopForeignKafka, stopForeignMirrorMakers } from "./kafka/mod.ts";
import { ensurePostgres, stopForeignPostgres } from "./postgres/mod.ts";

interface StepResult {
  readonly passed: number;
  readonly failed: number;
  readonly ok: boolean;
  /** The test process was killed by SIGABRT before it printed any summary. */
  readonly aborted?: boolean;
}

const SUMMARY = /^(?:ok|FAILED) \| (\d+) passed(?: \((\d+) steps?\))? \| (\d+) failed/;

/** Runs a command with inherited stdin/out but a copy of stdout scanned for deno test summaries. */
async function run(label: string, args: string[], env: Record<string, string> = {}): Promise<StepResult> {
  console.log(`\n== ${label}: deno ${args.join(" ")}`);
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  let passed = 0;
  let failed = 0;
  let summaries = 0;
  let buffered = "";
  const decoder = new TextDecoder();
  for await (const chunk of child.stdout) {
    await Deno.stdout.write(chunk);
    buffered += decoder.decode(chunk, { stream: true });
    const lines = buffered.split("\n");
    buffered = lines.pop() ?? "";
    for (const line of lines) {
      const match = SUMMARY.exec(line.trim());
      if (match) {
        summaries++;
        passed += Number(match[1]);
        failed += Number(match[3]);
      }
    }
  }
  const status = await child.status;
  const aborted = summaries === 0 && (status.signal === "SIGABRT" || status.code === 134);
  return { passed, failed, ok: status.success, aborted };
}

/**
 * {@link run}, once more when the test process aborted before any summary: Deno's `node:http2` can abort the whole
 * process inside nghttp2 when a gRPC peer sends GOAWAY (denoland/deno#36788, docs/ARCHITECTURE.md "Known crash"),
 * and the unit step runs every file in one process, so one such abort lost the step's ~1,150 results. A second
 * abort, or any other failure, counts as it is.
 */
async function runOnceMoreAfterAbort(label: string, args: string[]): Promise<StepResult> {
  const first = await run(label, args);
  if (!first.aborted) return first;
  console.log(
    `\n${label}: the test process aborted (SIGABRT) before its summary, as Deno's node:http2 does on some gRPC ` +
      "GOAWAYs (denoland/deno#36788); running the step once more",
  );
  return await run(`${label}, again after an abort`, args);
}

function findFiles(dir: string, keep: (name: string) => boolean): string[] {
  const found: string[] = [];
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory && entry.name !== "node_modules") found.push(...findFiles(path, keep));
    else if (entry.isFile && keep(entry.name)) found.push(path);
  }
  return found.sort();
}

const results: StepResult[] = [];
const verify = await run("verify", ["task", "verify"]);
results.push({ passed: verify.ok ? 1 : 0, failed: verify.ok ? 0 : 1, ok: verify.ok });

console.log("\n== infrastructure: Kafka east and west");
let kafkaOk = true;
try {
  // Tests kill and restart brokers and check what survives: they need brokers this checkout owns.
  // MirrorMaker first: without its brokers it does not finish a clean stop.
  await stopForeignMirrorMakers();
  await Promise.all(REGIONS.map((region) => stopForeignKafka(region)));
  await Promise.all(REGIONS.map((region) => ensureKafka(region)));
} catch (error) {
  kafkaOk = false;
  console.error(`Kafka did not start: ${(error as Error).message}`);
}
results.push({ passed: 0, failed: kafkaOk ? 0 : 1, ok: kafkaOk });

console.log("\n== infrastructure: PostgreSQL clusters east and west (order replication)");
let postgresOk = true;
try {
  // A cluster another checkout left on our ports is replaced, as for Kafka above.
  await Promise.all(REGIONS.map((region) => stopForeignPostgres(region)));
  await Promise.all(REGIONS.map((region) => ensurePostgres(region)));
} catch (error) {
  postgresOk = false;
  console.error(`PostgreSQL clusters did not start: ${(error as Error).message}`);
}
results.push({ passed: 0, failed: postgresOk ? 0 : 1, ok: postgresOk });

const unitDirs = ["shared", "regional", "edge", "scripts", "bench", "partner-kit"].filter((d) => {
  try {
    return Deno.statSync(d).isDirectory;
  } catch {
    return false;
  }
});
// Tests that restart a shared broker (`*_restart_test.ts`) would break whatever runs beside them, so they
// run on their own after the parallel phase, one file at a time.
const DISRUPTIVE = "**/*_restart_test.ts";
results.push(
  await runOnceMoreAfterAbort("unit and contract tests", [
    "test",
    "-A",
    "--parallel",
    `--ignore=${DISRUPTIVE}`,
    ...unitDirs,
  ]),
);
const restartTests = [...unitDirs.flatMap((dir) => findFiles(dir, (name) => name.endsWith("_restart_test.ts")))];
if (restartTests.length > 0) {
  results.push(await run("broker restarts", ["test", "-A", ...restartTests], { BV_TEST_BROKER_RESTARTS: "1" }));
}
results.push(await run("journeys", ["test", "-A", "tests/"]));

const passed = results.reduce((n, r) => n + r.passed, 0);
const failed = results.reduce((n, r) => n + r.failed + (r.ok || r.failed > 0 ? 0 : 1), 0);
console.log(`\ntests: ${passed} passed, ${failed} failed`);
Deno.exit(failed === 0 ? 0 : 1);
