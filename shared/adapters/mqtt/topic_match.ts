/**
 * @module
 * MQTT topic-filter matching (`+` one level, `#` the rest), used to route a message to its handlers.
 */

/** Whether `topic` matches `filter`; wildcards at the first level never match `$`-topics (MQTT 4.7.2). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = filter.split("/");
  const t = topic.split("/");
  if (topic.startsWith("$") && (f[0] === "+" || f[0] === "#")) return false;
  for (let i = 0; i < f.length; i++) {
    if (f[i] === "#") return true;
    if (i >= t.length) return false;
    if (f[i] !== "+" && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
