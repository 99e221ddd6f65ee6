/**
 * @module
 * A new PGlite database starts from a cached copy of an empty cluster instead of running `initdb`. `initdb`
 * in WASM is most of PGlite's boot (about 5.5 s for a new `dataDir` on the 2-core machine, against 1.5 s loading
 * the copy), and the embedded platform boots two at once, as do test files running in parallel. The copy is
 * PGlite's own `dumpDataDir` of a database nobody has touched, made once per PGlite version and kept in the
 * project's ignored `.cache/pglite/`; every process that finds none makes one (written to a temp file and
 * renamed, so racing processes each leave a whole file).
 */
import { PGlite } from "@electric-sql/pglite";

/** The project's ignored cache folder (Kafka's jars live there too). */
const TEMPLATE_DIR = new URL("../../../.cache/pglite/", import.meta.url);
/** The pinned PGlite version, from where its module resolved: a template is only ever loaded by its maker's version. */
const PGLITE_VERSION = /pglite@([^/]+)\//.exec(import.meta.resolve("@electric-sql/pglite"))?.[1] ?? "unknown";

/** Templates cached in one folder. */
export interface ClusterTemplates {
  /** The empty cluster a new database is loaded from; undefined (after one warning) when none can be made. */
  get(warn: (message: string) => void): Promise<Blob | undefined>;
  /** Forgets a template that failed to load (a corrupt file): the next `get` makes a new one. */
  discard(): Promise<void>;
}

/** Templates kept in `dir` (a folder URL ending in `/`). */
export function clusterTemplates(dir: URL): ClusterTemplates {
  const file = new URL(`empty-cluster-${PGLITE_VERSION}.tar.gz`, dir);
  let template: Promise<Blob | undefined> | undefined;

  async function loadOrMake(): Promise<Blob> {
    try {
      return new Blob([await Deno.readFile(file)]);
    } catch (error) {
      if (!(error instanceof Deno.errors.NotFound)) throw error;
    }
    const db = await PGlite.create();
    let blob: Blob;
    try {
      blob = await db.dumpDataDir("gzip");
    } finally {
      await db.close();
    }
    await Deno.mkdir(dir, { recursive: true });
    const temp = new URL(`${file.pathname.split("/").pop()}.${crypto.randomUUID()}.tmp`, dir);
    await Deno.writeFile(temp, new Uint8Array(await blob.arrayBuffer()));
    await Deno.rename(temp, file);
    return blob;
  }

  return {
    get(warn) {
      template ??= loadOrMake().catch((error) => {
        warn(`PGlite databases will run initdb: no cluster template (${error})`);
        return undefined;
      });
      return template;
    },
    async discard() {
      template = undefined;
      await Deno.remove(file).catch(() => {});
    },
  };
}

/** The adapter's templates, in the project's ignored cache folder. */
export const projectClusterTemplates: ClusterTemplates = clusterTemplates(TEMPLATE_DIR);
