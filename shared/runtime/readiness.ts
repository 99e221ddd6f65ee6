/**
 * @module
 * Readiness: each dependency of a process is a named check with a timeout. `/readyz` runs them all in
 * parallel on every call (no cached verdict, so a broker that dies turns it red on the next probe).
 */
import { metrics } from "../observability/mod.ts";

/** Throws when the dependency cannot be used; must settle within `timeoutMs`. */
export type ReadinessCheck = (timeoutMs: number) => Promise<void>;

export interface ReadinessReport {
  readonly ready: boolean;
  readonly checks: Readonly<Record<string, { readonly ok: boolean; readonly ms: number; readonly error?: string }>>;
}

/** Rejects with a clear message when `promise` does not settle in time. */
export function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Runs every check (bounded by `timeoutMs` each) and reports which passed. */
export async function runReadiness(
  checks: Readonly<Record<string, ReadinessCheck>>,
  timeoutMs: number,
): Promise<ReadinessReport> {
  const entries = await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      const started = performance.now();
      try {
        await withTimeout(check(timeoutMs), timeoutMs, `Readiness check "${name}"`);
        metrics.dependencyUp.set({ dependency: name }, 1);
        return [name, { ok: true, ms: Math.round(performance.now() - started) }] as const;
      } catch (error) {
        metrics.dependencyUp.set({ dependency: name }, 0);
        const message = error instanceof Error ? error.message : String(error);
        return [name, { ok: false, ms: Math.round(performance.now() - started), error: message }] as const;
      }
    }),
  );
  return { ready: entries.every(([, r]) => r.ok), checks: Object.fromEntries(entries) };
}
