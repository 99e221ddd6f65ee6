import assert from "node:assert/strict";
import { topicMatches } from "./topic_match.ts";

Deno.test("topicMatches() follows MQTT wildcard rules", () => {
  const cases: [string, string, boolean][] = [
    ["a/b", "a/b", true],
    ["a/b", "a/c", false],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/+/c", "a/x/c", true],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["#", "a/b", true],
    ["+/b", "$SYS/b", false],
    ["#", "$SYS/x", false],
    ["a/b/c", "a/b", false],
    ["+", "", true],
  ];
  for (const [filter, topic, expected] of cases) {
    assert.equal(topicMatches(filter, topic), expected, `${filter} vs ${topic}`);
  }
});
