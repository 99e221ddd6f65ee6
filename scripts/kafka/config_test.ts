/**
 * Where the broker scripts put things (a checkout path with spaces) and which process on a broker's port they
 * may signal: decided from made-up command lines, so no real process is touched.
 */
import assert from "node:assert/strict";
import { brokerLayout, brokerPortVerdict, isSiblingBroker, REPO_ROOT, repoRootOf } from "./_config.ts";
import { exists } from "./_process.ts";

/** A `/proc/<pid>/cmdline`: every argument ended by NUL. */
function cmdline(...argv: string[]): string {
  return argv.map((arg) => `${arg}\0`).join("");
}

function brokerCmdline(propertiesFile: string): string {
  return cmdline(
    "java",
    "-Xmx512m",
    "-Dlog4j2.configurationFile=/work/x/infra/kafka/log4j2.properties",
    "-cp",
    "/work/x/.cache/kafka/4.1.1/libs/*",
    "kafka.Kafka",
    propertiesFile,
  );
}

Deno.test("repoRootOf() maps a percent-encoded file URL to the real folder", () => {
  assert.equal(repoRootOf("file:///tmp/my%20proj/scripts/kafka/_config.ts"), "/tmp/my proj");
  assert.equal(repoRootOf(new URL("file:///tmp/caf%C3%A9%231/scripts/kafka/_config.ts")), "/tmp/café#1");
  assert.equal(repoRootOf("file:///work/main/scripts/kafka/_config.ts"), "/work/main");
});

Deno.test("REPO_ROOT is this checkout and the broker's files lie inside it", async () => {
  assert.ok(await exists(`${REPO_ROOT}/deno.json`), REPO_ROOT);
  assert.ok(brokerLayout("east").propertiesFile.startsWith(`${REPO_ROOT}/.data/kafka/east/`));
});

Deno.test("brokerPortVerdict() lets the tooling signal only this checkout's broker of that region", () => {
  const east = brokerLayout("east");
  assert.deepEqual(brokerPortVerdict(east, east.port, undefined), { kind: "free" });
  assert.deepEqual(brokerPortVerdict(east, east.port, { pid: 4242, cmdline: brokerCmdline(east.propertiesFile) }), {
    kind: "ours",
    pid: 4242,
  });
  assert.deepEqual(
    brokerPortVerdict(east, east.controllerPort, { pid: 4242, cmdline: brokerCmdline(east.propertiesFile) }),
    { kind: "ours", pid: 4242 },
    "the controller port belongs to the same JVM",
  );
  const foreign = [
    brokerCmdline("/work/other/.data/kafka/east/server.properties"), // another checkout's broker
    brokerCmdline(`/srv${east.propertiesFile}`), // a path that only ends like ours
    brokerCmdline(brokerLayout("west").propertiesFile), // the other region's broker
    cmdline("tail", "-f", east.propertiesFile), // names our file, is no broker
    cmdline("python3", "-m", "http.server", String(east.port)),
    "", // a zombie: no command line left
  ];
  for (const line of foreign) {
    const verdict = brokerPortVerdict(east, east.port, { pid: 4242, cmdline: line });
    assert.equal(verdict.kind, "foreign", line);
  }
});

Deno.test("brokerPortVerdict() names the port, the pid and its command in one line", () => {
  const east = brokerLayout("east");
  const verdict = brokerPortVerdict(east, 9092, { pid: 4242, cmdline: cmdline("python3", "-m", "http.server") });
  assert.deepEqual(verdict, {
    kind: "foreign",
    message: "Port 9092 is held by pid 4242 (python3 -m http.server), not this checkout's Kafka east broker; it " +
      "was left running: stop it or set KAFKA_EAST_PORT to another port",
  });
  const unseen = brokerPortVerdict(east, 9092, { cmdline: "" });
  assert.equal(unseen.kind, "foreign");
  assert.match(unseen.kind === "foreign" ? unseen.message : "", /^Port 9092 is held by a process whose pid /);
  // A JVM's command line runs to kilobytes; the message keeps its start and the properties file at its end.
  const other = brokerPortVerdict(east, 9092, {
    pid: 7,
    cmdline: brokerCmdline(`/work/other/${"x".repeat(500)}/.data/kafka/east/server.properties`),
  });
  const message = other.kind === "foreign" ? other.message : "";
  assert.ok(!message.includes("\n") && message.length < 400, message);
  assert.match(message, /\(java -Xmx512m .* … .*\/\.data\/kafka\/east\/server\.properties\)/);
});

Deno.test("brokerPortVerdict() compares whole arguments, so a checkout path with spaces still matches", () => {
  const layout = { ...brokerLayout("east"), propertiesFile: "/tmp/my proj/.data/kafka/east/server.properties" };
  assert.deepEqual(brokerPortVerdict(layout, 9092, { pid: 9, cmdline: brokerCmdline(layout.propertiesFile) }), {
    kind: "ours",
    pid: 9,
  });
  assert.equal(brokerPortVerdict(layout, 9092, { pid: 9, cmdline: brokerCmdline("/tmp/my") }).kind, "foreign");
});

Deno.test("isSiblingBroker() names only another checkout's broker of the same region, which ./bv test replaces", () => {
  const east = brokerLayout("east");
  const argvOf = (text: string) => text.split("\0").filter((arg) => arg !== "");
  assert.ok(isSiblingBroker(east, argvOf(brokerCmdline("/srv/another checkout/.data/kafka/east/server.properties"))));
  assert.ok(isSiblingBroker(east, argvOf(brokerCmdline("/home/u/my proj/.data/kafka/east/server.properties"))));
  assert.ok(!isSiblingBroker(east, argvOf(brokerCmdline(east.propertiesFile))), "ours is not a sibling");
  assert.ok(
    !isSiblingBroker(east, argvOf(brokerCmdline("/srv/another checkout/.data/kafka/west/server.properties"))),
    "west",
  );
  assert.ok(!isSiblingBroker(east, argvOf(brokerCmdline("/opt/kafka/config/server.properties"))), "a system Kafka");
  assert.ok(!isSiblingBroker(east, ["python3", "-m", "http.server", "/x/.data/kafka/east/server.properties"]));
});
