/**
 * @module
 * The edge's `/metrics` in Prometheus text: request counters, cache, each region's health and probe
 * latency EWMA, invalidation streams, flash-sale fan-out (clients per region, upstream up) and WebSockets.
 */
import type { FlashSaleFanoutStats } from "./flash_sale_fanout.ts";
import type { RegionHealth } from "./region_router.ts";

export interface EdgeMetricsInput {
  readonly counters: {
    readonly requests: number;
    readonly failovers: number;
    readonly noRegion: number;
    readonly authRejected: number;
    readonly rateLimited: number;
    readonly purged: number;
    readonly webSockets: number;
    readonly stickyHonoured: number;
    readonly cache: { readonly hits: number; readonly stale: number; readonly misses: number; notModified: number };
  };
  readonly cache?: { readonly entries: number; readonly bytes: number };
  readonly regions: readonly RegionHealth[];
  readonly invalidationStreams: readonly { readonly region: string; readonly up: boolean }[];
  readonly flashSales?: FlashSaleFanoutStats;
}

function family(type: "counter" | "gauge", name: string, samples: readonly [string, number][]): string[] {
  return [`# TYPE ${name} ${type}`, ...samples.map(([labels, value]) => `${name}${labels} ${value}`)];
}

const byRegion = (region: string) => `{region="${region}"}`;

/** The whole exposition, one family per metric. */
export function edgeMetricsText(input: EdgeMetricsInput): string {
  const { counters, regions } = input;
  const sse = input.flashSales;
  const lines = [
    ...family("counter", "bv_edge_requests_total", [["", counters.requests]]),
    ...family("counter", "bv_edge_failovers_total", [["", counters.failovers]]),
    ...family("counter", "bv_edge_no_region_total", [["", counters.noRegion]]),
    ...family("counter", "bv_edge_auth_rejected_total", [["", counters.authRejected]]),
    ...family("counter", "bv_edge_rate_limited_total", [["", counters.rateLimited]]),
    ...family(
      "counter",
      "bv_edge_cache_lookups_total",
      (["hits", "stale", "misses", "notModified"] as const).map((r) => [`{result="${r}"}`, counters.cache[r]]),
    ),
    ...family("counter", "bv_edge_cache_purged_total", [["", counters.purged]]),
    ...family("gauge", "bv_edge_cache_entries", [["", input.cache?.entries ?? 0]]),
    ...family("gauge", "bv_edge_cache_bytes", [["", input.cache?.bytes ?? 0]]),
    ...family("gauge", "bv_edge_region_healthy", regions.map((r) => [byRegion(r.name), r.healthy ? 1 : 0])),
    ...family("gauge", "bv_edge_region_latency_ewma_ms", regions.map((r) => [byRegion(r.name), r.latencyMs])),
    ...family(
      "gauge",
      "bv_edge_invalidation_stream_up",
      input.invalidationStreams.map((s) => [byRegion(s.region), s.up ? 1 : 0]),
    ),
    ...family("counter", "bv_edge_websockets_total", [["", counters.webSockets]]),
    ...family("counter", "bv_edge_sticky_honoured_total", [["", counters.stickyHonoured]]),
  ];
  if (sse !== undefined) {
    lines.push(
      ...family("gauge", "bv_edge_sse_clients", Object.entries(sse.clients).map(([r, n]) => [byRegion(r), n])),
      ...family(
        "gauge",
        "bv_edge_sse_upstream_up",
        Object.entries(sse.upstreamUp).map(([r, up]) => [byRegion(r), up ? 1 : 0]),
      ),
      ...family(
        "counter",
        "bv_edge_sse_upstream_connects_total",
        Object.entries(sse.upstreamConnects).map(([r, n]) => [byRegion(r), n]),
      ),
      ...family("counter", "bv_edge_sse_events_total", [["", sse.events]]),
      ...family("counter", "bv_edge_sse_slow_dropped_total", [["", sse.slowDropped]]),
      ...family("counter", "bv_edge_sse_refused_total", [["", sse.refused]]),
    );
  }
  return lines.join("\n") + "\n";
}
