/**
 * @module
 * Small helpers the scenarios share: where a URL's server listens, and the run-unique names that keep a
 * bench run apart from tests and services on the same servers.
 */

/** `host:port` of a URL such as `postgres://user@127.0.0.1:5432/db`, with the scheme's port when absent. */
export function hostPortOf(url: string, defaultPort: number): string {
  const parsed = new URL(url);
  return `${parsed.hostname}:${parsed.port === "" ? defaultPort : parsed.port}`;
}

/** Builds unique message ids cheaply: a run prefix and a counter (no crypto on the measured path). */
export function idSequence(prefix: string): () => string {
  let next = 0;
  return () => `${prefix}-${next++}`;
}
