/**
 * @module
 * Names that keep test runs apart on shared servers (databases, topics, vhosts, key prefixes).
 */

/** A lower-case name unique to this call: `<prefix>_<time36><random>`; safe as a database, topic or vhost. */
export function uniqueName(prefix: string): string {
  const random = crypto.getRandomValues(new Uint32Array(1))[0].toString(36);
  return `${prefix}_${Date.now().toString(36)}${random}`.toLowerCase();
}
