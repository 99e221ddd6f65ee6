/**
 * @module
 * Analytics of the e-commerce deployable (seed 003 "analytics projection", "batch sales summary"): the
 * streaming revenue projection, its REST read, the daily sales batch and the replay with parity.
 */
export { analyticsMigrations } from "./migrations.ts";
export { REVENUE_CONSUMER, type RevenueProjectionDeps, startRevenueProjection } from "./revenue_projection.ts";
export { REVENUE_TOPICS, type RevenueTopics } from "./revenue_events.ts";
export type { RevenueWindow } from "./revenue_store.ts";
export { type AnalyticsRoutesDeps, createAnalyticsRoutes, REVENUE_RANGE_MS_MAX, REVENUE_ROWS_MAX } from "./routes.ts";
export {
  assertDaySettled,
  type DailySalesOptions,
  type DailySalesRow,
  DAY_SETTLE_MS,
  DayNotSettledError,
  readDailySales,
  runDailySales,
  utcDayOf,
  yesterdayUtc,
} from "./daily_sales.ts";
export {
  formatParity,
  type ParityLine,
  replayRevenue,
  type ReplayRevenueOptions,
  type RevenueParity,
} from "./replay_revenue.ts";
