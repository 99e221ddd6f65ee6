/**
 * @module
 * `GET /api/v1/analytics/revenue?from=&to=&currency=` (ADMIN): the per-minute windows of the live
 * projection whose start lies in [from, to), oldest first, with per-currency totals. Windows with no paid
 * or canceled-after-paid order are absent (the answer is sparse). Money is decimal text.
 */
import { Hono } from "hono";
import { z } from "zod";
import { type AuthEnv, requireAuth, type TokenVerifier } from "../../../shared/auth/mod.ts";
import { ProblemError } from "../../../shared/contracts/problem.ts";
import { installProblemHandlers } from "../../../shared/http/mod.ts";
import type { Sql } from "../../../shared/ports/mod.ts";
import { decimalTextOfUnits, unitsOfDecimal } from "./_decimal.ts";
import { readRevenueWindows, type RevenueWindow } from "./revenue_store.ts";

/** The widest range one request may ask for: 7 days of minutes. */
export const REVENUE_RANGE_MS_MAX = 7 * 24 * 60 * 60_000;
/** The range when `from` is omitted: the hour before `to`. */
export const REVENUE_RANGE_MS_DEFAULT = 60 * 60_000;
/** Rows one answer may hold: 7 days of minutes in two currencies. Wider asks must name a currency. */
export const REVENUE_ROWS_MAX = 2 * 7 * 24 * 60;

const MINUTE_MS = 60_000;
/**
 * The times `from` and `to` may name (years 1970 to 9999): ISO 8601 allows year 0000 and offsets that carry
 * 9999-12-31 into year 10000, which PostgreSQL refuses (SQLSTATE 22008, a 500); no revenue lies outside.
 */
const TIME_MS_MIN = Date.UTC(1970, 0, 1);
const TIME_MS_MAX = Date.UTC(10_000, 0, 1) - 1;

export interface AnalyticsRoutesDeps {
  readonly sql: Sql;
  readonly verifier: TokenVerifier;
  /** The clock for the default range. @default () => new Date() */
  readonly now?: () => Date;
}

const revenueQuery = z.strictObject({
  from: z.iso.datetime({ offset: true }).optional(),
  to: z.iso.datetime({ offset: true }).optional(),
  currency: z.string().regex(/^[A-Z]{3}$/, 'an ISO 4217 code in upper case such as "USD"').optional(),
});

/** Creates the analytics routes; throws at setup when a dependency is missing. */
export function createAnalyticsRoutes(deps: AnalyticsRoutesDeps): Hono {
  if (typeof deps.sql?.query !== "function") throw new TypeError("createAnalyticsRoutes requires sql");
  const now = deps.now ?? (() => new Date());
  const app = new Hono<AuthEnv>();
  installProblemHandlers(app as unknown as Hono);
  const admin = requireAuth(deps.verifier, { roles: ["ADMIN"] });

  app.get("/api/v1/analytics/revenue", admin, async (c) => {
    const query = parseQuery(c.req.query());
    const { from, to } = rangeOf(query, now());
    const windows = await readRevenueWindows(deps.sql, {
      from,
      to,
      currency: query.currency,
      limit: REVENUE_ROWS_MAX + 1,
    });
    if (windows.length > REVENUE_ROWS_MAX) {
      throw new ProblemError(
        "COMMON.VALIDATION_FAILED",
        `The range holds more than ${REVENUE_ROWS_MAX} windows; narrow "from"/"to" or pass "currency"`,
      );
    }
    return c.json({
      from: from.toISOString(),
      to: to.toISOString(),
      currency: query.currency ?? null,
      windows,
      totals: totalsOf(windows),
    });
  });
  return app as unknown as Hono;
}

function parseQuery(raw: Record<string, string>): z.infer<typeof revenueQuery> {
  const parsed = revenueQuery.safeParse(raw);
  if (parsed.success) return parsed.data;
  const errors = parsed.error.issues.map((issue) => ({
    path: issue.path.map(String).join(".") || "(query)",
    message: issue.code === "unrecognized_keys" ? `${issue.message}; use from, to and currency` : issue.message,
  }));
  throw new ProblemError(
    "COMMON.VALIDATION_FAILED",
    `Query failed validation: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")} ` +
      '(times are ISO 8601 with an offset, such as "2025-01-31T10:00:00Z")',
    { errors },
  );
}

/** [from, to): `to` defaults to the end of the current minute, `from` to an hour before `to`. */
function rangeOf(query: z.infer<typeof revenueQuery>, now: Date): { from: Date; to: Date } {
  const to = query.to ? timeOf("to", query.to) : new Date((Math.floor(now.getTime() / MINUTE_MS) + 1) * MINUTE_MS);
  const from = query.from ? timeOf("from", query.from) : new Date(to.getTime() - REVENUE_RANGE_MS_DEFAULT);
  if (from >= to) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `"from" (${from.toISOString()}) must be before "to" (${to.toISOString()}); swap or widen them`,
    );
  }
  if (to.getTime() - from.getTime() > REVENUE_RANGE_MS_MAX) {
    throw new ProblemError(
      "COMMON.VALIDATION_FAILED",
      `The range from "${from.toISOString()}" to "${to.toISOString()}" is longer than 7 days; ask for 7 days ` +
        "at most per request",
    );
  }
  return { from, to };
}

/** The instant `text` (already checked as ISO 8601) names; a 400 problem outside years 1970 to 9999. */
function timeOf(name: "from" | "to", text: string): Date {
  const at = new Date(text);
  if (at.getTime() >= TIME_MS_MIN && at.getTime() <= TIME_MS_MAX) return at;
  throw new ProblemError(
    "COMMON.VALIDATION_FAILED",
    `"${name}" ("${text}") must lie in the years 1970 to 9999 (UTC); send a time such as "2025-01-31T10:00:00Z"`,
  );
}

function totalsOf(windows: readonly RevenueWindow[]): { currency: string; revenue: string; orders: number }[] {
  const totals = new Map<string, { units: bigint; orders: number }>();
  for (const w of windows) {
    const total = totals.get(w.currency) ?? { units: 0n, orders: 0 };
    total.units += unitsOfDecimal(w.revenue);
    total.orders += w.orders;
    totals.set(w.currency, total);
  }
  return [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([currency, t]) => ({
    currency,
    revenue: decimalTextOfUnits(t.units),
    orders: t.orders,
  }));
}
