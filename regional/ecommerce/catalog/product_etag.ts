/**
 * @module
 * Entity tags of a product (RFC 9110 section 8.8.3) and the conditional headers that send them back. A product's
 * ETag is strong and names its row version, `"v7"` for `products.version` 7: the version grows by one with every
 * change, and the JSON of a product is a function of its row, so one version is one representation, byte for byte,
 * whether it came from SQL or from the product cache.
 */
import { ProblemError } from "../../../shared/contracts/problem.ts";

/** Most entity tags one `If-Match` may list; a longer list answers 400 (a client sends one, or `*`). */
export const IF_MATCH_TAGS_MAX = 16;

/** What `If-Match` asks of a write: nothing (no header, or `*`: any current product), or one of these versions. */
export type VersionPrecondition = { readonly any: true } | { readonly versions: readonly number[] };

const STRONG_VERSION_TAG = /^"v([1-9][0-9]{0,9})"$/;
/** `products.version` is an `int`: a larger number names no version. */
const VERSION_MAX = 2 ** 31 - 1;

/** The strong ETag of a product at `version`: `"v7"`. */
export function productEtag(version: number): string {
  return `"v${version}"`;
}

/**
 * Parses an `If-Match` value (`*`, or a comma-separated list of entity tags) into the versions it names, by strong
 * comparison (RFC 9110 section 13.1.1): a weak tag, or a tag that is not one of ours (an edge's hash of a body), can
 * match no version, so it stays in the list as nothing and the write answers 412. A value that is not the header's
 * syntax is refused with 400 rather than ignored: ignoring it would turn a write the client made conditional into
 * an unconditional overwrite.
 */
export function parseIfMatch(value: string): VersionPrecondition {
  if (value.trim() === "*") return { any: true };
  const tags = parseEntityTags(value);
  if (tags === undefined) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `If-Match "${value.slice(0, 64)}" is not "*" or a list of quoted entity tags; send the ETag of ` +
        `GET /api/v1/products/{id} as it came (for example "v3"), or leave the header out`,
    );
  }
  if (tags.length > IF_MATCH_TAGS_MAX) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `If-Match lists ${tags.length} entity tags; send at most ${IF_MATCH_TAGS_MAX} (the ETag you last read)`,
    );
  }
  const versions: number[] = [];
  for (const tag of tags) {
    const digits = STRONG_VERSION_TAG.exec(tag)?.[1];
    if (digits !== undefined && Number(digits) <= VERSION_MAX) versions.push(Number(digits));
  }
  return { versions };
}

/**
 * True when an `If-None-Match` value names the product at `version` (weak comparison, RFC 9110 section 13.1.2) or
 * is `*`. A malformed value names nothing: the reader simply gets the whole product.
 */
export function ifNoneMatchHits(value: string | undefined, version: number): boolean {
  if (value === undefined) return false;
  if (value.trim() === "*") return true;
  const current = productEtag(version);
  return parseEntityTags(value)?.some((tag) => (tag.startsWith("W/") ? tag.slice(2) : tag) === current) ?? false;
}

/**
 * The entity tags of `#entity-tag` (RFC 9110 sections 5.6.1 and 8.8.3), each as sent (`W/` kept), or undefined
 * when the value is not that syntax or lists none. Empty list elements are allowed, as the RFC asks. A scanner, not
 * a regular expression: one pass, however long the header.
 */
function parseEntityTags(value: string): string[] | undefined {
  const tags: string[] = [];
  const end = value.length;
  let at = 0;
  const skipSpace = () => {
    while (at < end && (value[at] === " " || value[at] === "\t")) at++;
  };
  while (true) {
    skipSpace();
    if (at < end && value[at] !== ",") {
      const start = at;
      if (value.startsWith("W/", at)) at += 2;
      if (value[at] !== '"') return undefined;
      at++;
      while (at < end && isEtagChar(value.charCodeAt(at))) at++;
      if (value[at] !== '"') return undefined;
      at++;
      tags.push(value.slice(start, at));
      skipSpace();
    }
    if (at === end) break;
    if (value[at] !== ",") return undefined;
    at++;
  }
  return tags.length === 0 ? undefined : tags;
}

/** `etagc` of RFC 9110: any visible character but the double quote, and obs-text. */
function isEtagChar(code: number): boolean {
  return code === 0x21 || (code >= 0x23 && code <= 0x7e) || (code >= 0x80 && code <= 0xff);
}
