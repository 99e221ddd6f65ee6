import assert from "node:assert/strict";
import { loadConfig, SERVICES } from "../../shared/config/config.ts";
import { startEmbeddedMqttBroker } from "../../shared/adapters/aedes/mod.ts";
import { type LogLevel, setLogLevel } from "../../shared/observability/mod.ts";
import { createLifecycle } from "../../shared/runtime/mod.ts";
import { embeddedRegionPorts } from "../wiring/region_ports.ts";
import { serviceFactories } from "../wiring/services.ts";
import { serviceForPath } from "./routes.ts";

Deno.test("serviceForPath() routes by whole path segments", () => {
  const cases: [string, string | undefined][] = [
    ["/api/v1/auth/login", "security"],
    ["/.well-known/jwks.json", "security"],
    ["/api/v1/products", "ecommerce"],
    ["/api/v1/products/42", "ecommerce"],
    ["/api/v1/productsx", undefined],
    ["/sse/orders/1", "ecommerce"],
    ["/ws/flash-sales", "ecommerce"],
    ["/ws/chat", "chat"],
    ["/api/v1/devices/d1/telemetry", "iot"],
    ["/api/v1/feeds/me", "social"],
    ["/api/v1/ops/event-types", "ops"],
    ["/", undefined],
    ["/api/v1", undefined],
  ];
  for (const [path, service] of cases) assert.equal(serviceForPath(path), service, path);
});

/** Paths a deployable serves that the ingress must not route to it, and why. */
const NOT_THROUGH_THE_INGRESS: readonly (readonly [RegExp, string])[] = [
  // Service-to-service routes (signed sensor batches): reached on the service port only, by design.
  [/^\/internal(\/|$)/, "service port only"],
  // Every process's own probes and metrics: the ingress answers these paths itself, for the ingress.
  [/^\/(healthz|readyz|metrics)$/, "the ingress's own"],
];

function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** A concrete path for a Hono route pattern (`/api/v1/orders/:id/pay` → `/api/v1/orders/x/pay`). */
function samplePathOf(pattern: string): string {
  return pattern.replace(/:[^/{]+(\{[^}]*\})?\??/g, "x");
}

Deno.test({
  name: "every public route of every deployable is routed by the ingress to that deployable",
  // The deployables' background work (consumers, PGlite) is stopped by the lifecycle, asynchronously.
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The real service factories on the embedded ports: the routes walked are the ones deployed.
    const dataDir = await Deno.makeTempDir({ prefix: "bv-ingress-routes-" });
    const signingKey = `whsec_${btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(32))))}`;
    const config = loadConfig({
      BV_DATA_DIR: dataDir,
      BV_EAST_GRPC_INVENTORY_PORT: String(freePort()),
      BV_EAST_EMBEDDED_MQTT_PORT: String(freePort()),
      BV_INTERNAL_SIGNING_KEY: signingKey,
    });
    setLogLevel("error");
    const lifecycle = createLifecycle({ graceMs: 5_000, handleSignals: false });
    try {
      const broker = await startEmbeddedMqttBroker({
        host: config.BV_HOST,
        port: config.regions.east.embeddedMqttPort,
      });
      lifecycle.onStop("aedes", () => broker.close());
      const ports = embeddedRegionPorts(config, "east");
      lifecycle.onStop("ports", () => ports.close());
      const misrouted: string[] = [];
      let walked = 0;
      for (const service of SERVICES) {
        const name = `${service}-east`;
        const app = await serviceFactories[service]({ config, region: "east", service, name, ports, lifecycle });
        for (const route of app.routes) {
          // Middleware mounted on a pattern (`/*`, `/api/v1/*`), not an endpoint anyone calls.
          if (route.path.includes("*")) continue;
          if (NOT_THROUGH_THE_INGRESS.some(([pattern]) => pattern.test(route.path))) continue;
          walked++;
          const routed = serviceForPath(samplePathOf(route.path));
          if (routed !== service) misrouted.push(`${route.method} ${route.path}: ${service}, ingress → ${routed}`);
        }
      }
      assert.ok(walked > 40, `only ${walked} routes walked: were the deployables built?`);
      assert.deepEqual([...new Set(misrouted)], [], "routes the ingress does not send to their deployable");
    } finally {
      await lifecycle.stop("test done");
      setLogLevel((Deno.env.get("BV_LOG_LEVEL") ?? "info") as LogLevel);
      await Deno.remove(dataDir, { recursive: true }).catch(() => {});
    }
  },
});
