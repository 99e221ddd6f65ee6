/** @module Recursive file listing for tests (no jsr:@std/fs here: JSR is not reachable). */

const SKIP = new Set(["node_modules", ".git", ".cache", ".data", "tools"]);

/** Yields the paths of files under `dir` for which `keep` is true, skipping dependency and data folders. */
export async function* walk(dir: string, keep: (path: string) => boolean): AsyncGenerator<string> {
  for await (const entry of Deno.readDir(dir)) {
    if (SKIP.has(entry.name)) continue;
    const path = `${dir.replace(/\/$/, "")}/${entry.name}`;
    if (entry.isDirectory) yield* walk(path, keep);
    else if (entry.isFile && keep(path)) yield path;
  }
}
