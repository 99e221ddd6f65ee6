/**
 * @module
 * Process configuration, parsed once from the environment into a typed, frozen object. A missing or
 * malformed variable is a {@linkcode ConfigError} whose message is one line naming it; `loadConfigOrExit`
 * prints that line and exits with status 78 (EX_CONFIG).
 */
import { z } from "zod";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";

export const REGIONS = ["east", "west"] as const;
export type Region = (typeof REGIONS)[number];

/** The deployables of a region, one bounded context each. */
export const SERVICES = ["security", "ecommerce", "chat", "iot", "social", "ops"] as const;
export type ServiceName = (typeof SERVICES)[number];

export class ConfigError extends Error {
  constructor(readonly variable: string, problem: string) {
    super(`Configuration error: ${variable} ${problem}`);
    this.name = "ConfigError";
  }
}

const port = z.coerce.number().int().min(1).max(65535);
/**
 * Inventory's `RESERVATION_TTL_SEC_MAX`: it refuses a longer reservation, so a larger BV_RESERVATION_TTL_SEC
 * would fail every order with 503 instead of stopping the process at startup. shared/ may not import a
 * context, so the value is repeated here; `regional/ecommerce/orders/order_deps_test.ts` pins the two together.
 */
const RESERVATION_TTL_SEC_MAX = 3_600;
const url = z.string().refine((v) => URL.canParse(v), "must be a URL");
/** A bind address: a hostname, an IPv4 address or an IPv6 address without brackets. */
const bindHost = z.string().refine(
  (v) => v.includes(":") ? isIP(v) === 6 : /^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$/.test(v),
  "must be a hostname, an IPv4 address or an IPv6 address without brackets",
);

/**
 * The default of BV_TRUSTED_PROXIES: loopback, private and unique-local networks, carrier-grade NAT, link-local (the
 * security service's client address reads it too).
 */
export const TRUSTED_PROXIES_DEFAULT: readonly string[] = Object.freeze([
  "127.0.0.0/8",
  "::1/128",
  "10.0.0.0/8",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "fc00::/7",
  "100.64.0.0/10",
  "169.254.0.0/16",
  "fe80::/10",
]);
/** The most ranges BV_TRUSTED_PROXIES (and the security service's client address) accepts. */
export const TRUSTED_PROXIES_MAX = 64;
/** Comma-separated CIDRs or single addresses (made /32 or /128); host bits and IPv4-mapped IPv6 are refused. */
const trustedProxies = z.string().transform((text, ctx) => {
  const entries = text.split(",").map((entry) => entry.trim());
  const problem = entries.length > TRUSTED_PROXIES_MAX
    ? `must list at most ${TRUSTED_PROXIES_MAX} ranges, got ${entries.length}`
    : entries.map(cidrProblemOf).find((found) => found !== undefined);
  if (problem === undefined) {
    return Object.freeze(
      entries.map((entry) => entry.includes("/") ? entry : `${entry}/${isIP(entry) === 4 ? 32 : 128}`),
    );
  }
  ctx.issues.push({ code: "custom", message: problem, input: text });
  return z.NEVER;
});

function cidrProblemOf(entry: string): string | undefined {
  if (entry === "") return "has an empty entry (a stray comma?)";
  const [address, prefix, extra] = entry.split("/");
  const version = isIP(address);
  const bitsMax = version === 4 ? 32 : 128;
  const bits = prefix === undefined ? bitsMax : /^\d{1,3}$/.test(prefix) ? Number(prefix) : NaN;
  if (version === 0 || extra !== undefined || address.includes("%") || !(bits <= bitsMax)) {
    return `"${entry}" is not a CIDR or an IP address (e.g. 10.0.0.0/8, fd00::/8, 203.0.113.7)`;
  }
  const parsed = ipaddr.parse(address);
  if (parsed.kind() === "ipv6" && (parsed as ipaddr.IPv6).isIPv4MappedAddress()) {
    return `"${entry}" is IPv4-mapped IPv6: write the range as IPv4`;
  }
  const cidr = `${address}/${bits}`;
  const start = version === 4 ? ipaddr.IPv4.networkAddressFromCIDR(cidr) : ipaddr.IPv6.networkAddressFromCIDR(cidr);
  return start.toString() === parsed.toString() ? undefined : `"${entry}" has host bits set: write ${start}/${bits}`;
}

/** The development key BV_WEBHOOK_SECRETS_KEY defaults to (committed: it seals nothing that matters). */
export const WEBHOOK_SECRETS_KEY_DEV_DEFAULT = "Yml0dmVsb2NpdHktZGV2LXdlYmhvb2sta2V5LTMyYiE=";
/** Bound on the webhook retry schedule's steps (each is a RabbitMQ retry queue per lane). */
export const WEBHOOK_RETRY_STEPS_MAX = 20;
/** Base64 of 32 bytes: an AES-256-GCM key. */
const webhookSecretsKey = z.string().refine((v) => {
  try {
    return atob(v).length === 32;
  } catch {
    return false;
  }
}, "must be base64 of 32 bytes (openssl rand -base64 32)");
/** Comma-separated delays in milliseconds, in order, each 1 ms to a day. */
const webhookRetryDelaysMs = z.string().transform((text, ctx) => {
  const entries = text.split(",").map((entry) => entry.trim());
  const delays = entries.map(Number);
  if (
    entries.length <= WEBHOOK_RETRY_STEPS_MAX &&
    delays.every((ms) => /^\d+$/.test(String(ms)) && ms >= 1 && ms <= 86_400_000)
  ) {
    return Object.freeze(delays);
  }
  ctx.issues.push({
    code: "custom",
    message: `must be 1 to ${WEBHOOK_RETRY_STEPS_MAX} comma-separated whole numbers of ms (at most a day each), ` +
      "e.g. 30000,120000,300000",
    input: text,
  });
  return z.NEVER;
});

/** Every variable, its parser and its default. Names are the contract (README lists them). */
const variables = {
  BV_MODE: z.enum(["embedded", "infra"]).default("embedded"),
  BV_DATA_DIR: z.string().min(1).default(".data"),
  BV_LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  /**
   * The address every HTTP listener binds to (a wildcard such as `0.0.0.0` or `::` listens on all interfaces). URLs
   * to this host's processes use {@linkcode Config.connectHost}, never this. The gRPC servers bind to BV_GRPC_HOST.
   */
  BV_HOST: bindHost.default("127.0.0.1"),
  /**
   * The address the inventory gRPC servers bind to. Loopback by default whatever BV_HOST is: gRPC here is plaintext
   * and unauthenticated (any caller could hold all stock or release others' reservations), so widen it only to a
   * trusted network; the server logs a warning when it is not loopback.
   */
  BV_GRPC_HOST: bindHost.default("127.0.0.1"),
  BV_EDGE_PORT: port.default(8080),
  /** How long the edge keeps an idle client on its region (sliding; also the HTTP `bv-region` cookie's Max-Age). */
  BV_EDGE_AFFINITY_TTL_MS: z.coerce.number().int().min(1_000).max(86_400_000).default(300_000),
  /** Client→region pins the edge keeps; the least recently seen goes first. */
  BV_EDGE_AFFINITY_ENTRIES_MAX: z.coerce.number().int().min(1).max(10_000_000).default(100_000),
  BV_EAST_INGRESS_PORT: port.default(8081),
  BV_WEST_INGRESS_PORT: port.default(8082),
  BV_EAST_GRPC_INVENTORY_PORT: port.default(50051),
  BV_WEST_GRPC_INVENTORY_PORT: port.default(50052),
  /** Each region's services listen on consecutive ports from this base, in the order of SERVICES. */
  BV_EAST_SERVICE_PORT_BASE: port.default(8110),
  BV_WEST_SERVICE_PORT_BASE: port.default(8210),
  /** Embedded mode only: the in-process aedes MQTT broker of each region. */
  BV_EAST_EMBEDDED_MQTT_PORT: port.default(1884),
  BV_WEST_EMBEDDED_MQTT_PORT: port.default(1885),
  /**
   * Embedded mode only: retention of each partition of the in-process event log, like Kafka's `retention.ms`
   * and `retention.bytes` plus a record count (whichever is reached first drops the oldest records). The
   * defaults bound one partition to ~64 MiB of heap for typical events (shared/adapters/memory/README.md).
   */
  BV_EMBEDDED_LOG_RETENTION_MS: z.coerce.number().int().min(1).default(7 * 24 * 60 * 60 * 1000),
  BV_EMBEDDED_LOG_RETENTION_RECORDS: z.coerce.number().int().min(1).default(100_000),
  BV_EMBEDDED_LOG_RETENTION_BYTES: z.coerce.number().int().min(1).default(64 * 1024 * 1024),
  /** The simulated legacy payment gateway (SOAP + REST fallback), shared by both regions. */
  BV_PAYMENT_GATEWAY_PORT: port.default(8089),
  /**
   * Unpaid reservations lapse after this long; at most {@linkcode RESERVATION_TTL_SEC_MAX}, at least 80 s
   * (twice the longest payment: orders start a charge only if it can finish within the hold).
   */
  BV_RESERVATION_TTL_SEC: z.coerce.number().int().min(80, "must be at least 80 (twice the longest payment)").max(
    RESERVATION_TTL_SEC_MAX,
    `must be at most ${RESERVATION_TTL_SEC_MAX} (inventory refuses longer reservations)`,
  ).default(900),
  /**
   * Prefix of every Kafka topic and consumer group of this platform instance ("" in production). Test runs
   * sharing a cluster set a unique one, like their database names and Redis prefixes.
   */
  BV_KAFKA_PREFIX: z.string().regex(/^([a-z0-9_]+\.)?$/).default(""),
  /**
   * AES-256-GCM key (base64 of 32 bytes) that encrypts partner webhook secrets at rest. The default is a
   * development key (README): set a real one anywhere that matters.
   */
  BV_WEBHOOK_SECRETS_KEY: z.string().refine((v) => {
    try {
      return atob(v).length === 32;
    } catch {
      return false;
    }
  }, "must be base64 of 32 bytes").default("Yml0dmVsb2NpdHktZGV2LXdlYmhvb2sta2V5LTMyYiE="),
  /**
   * Where partner webhooks may be delivered: `public` refuses loopback, private, link-local (cloud metadata),
   * CGNAT, unique-local, multicast and reserved addresses, and `localhost` (SSRF); `any` allows them all, for
   * development. `./bv start` and `start:infra` set `any` for their children when it is unset (partner receivers on
   * localhost); a deployable started on its own gets the default.
   */
  BV_WEBHOOK_EGRESS: z.enum(["public", "any"], {
    message: 'must be "public" (public addresses only) or "any" (development: loopback and private too)',
  }).default("public"),
  /**
   * The key BV_WEBHOOK_SECRETS_KEY replaced: it still opens the secrets it sealed, so the key can be changed
   * without breaking deliveries (new and rotated secrets are sealed with the current key). Unset: none.
   */
  BV_WEBHOOK_SECRETS_KEY_PREVIOUS: webhookSecretsKey.optional(),
  /**
   * How long a webhook delivery whose secret opens with neither key is tried again (every first retry delay) before
   * it fails for good: during a rolling key change another instance may have the new key already. 0: at once.
   */
  BV_WEBHOOK_SECRET_UNREADABLE_GRACE_MS: z.coerce.number().int().min(0).max(24 * 60 * 60_000).default(600_000),
  /**
   * Flash-sale streams (SSE and WebSocket together) one e-commerce process holds; more are refused with 429 and
   * Retry-After. Size it to the process's open-file limit. The edges' followers each hold one.
   */
  BV_FLASH_SALE_STREAMS_MAX: z.coerce.number().int().min(1).max(1_000_000).default(10_000),
  /** Partner webhook retry schedule (delays before each retry; attempts = delays + 1). Default 30 s, 2, 5, 15, 30 m. */
  BV_WEBHOOK_RETRY_DELAYS_MS: webhookRetryDelaysMs.default(
    Object.freeze([30_000, 120_000, 300_000, 900_000, 1_800_000]),
  ),
  /** Deadline of one webhook delivery attempt (resolving the destination and the POST); Standard Webhooks: 15-30 s. */
  BV_WEBHOOK_DELIVERY_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(15_000),
  /** Consecutive failed deliveries to one endpoint that open its circuit. */
  BV_WEBHOOK_BREAKER_FAILURES: z.coerce.number().int().min(1).max(1_000).default(5),
  /** How long an endpoint's circuit stays open before a trial request. Unset: min(30 s, the first retry delay). */
  BV_WEBHOOK_BREAKER_HALF_OPEN_MS: z.coerce.number().int().min(100).max(3_600_000).optional(),
  /**
   * Webhook delivery attempts in flight per destination origin in one process; more wait the first retry delay
   * without using an attempt, so one slow partner cannot take every delivery slot (4 lanes × prefetch 16).
   */
  BV_WEBHOOK_ENDPOINT_CONCURRENCY: z.coerce.number().int().min(1).max(1_000).default(4),
  /** How long a rotated-out webhook secret keeps signing beside the new one (time for the partner to deploy it). */
  BV_WEBHOOK_SECRET_OVERLAP_MS: z.coerce.number().int().min(0).max(30 * 24 * 60 * 60_000).default(24 * 60 * 60_000),
  /** Webhook delivery attempt rows older than this are purged (well past a delivery's life of about 3 hours). */
  BV_WEBHOOK_ATTEMPTS_RETENTION_DAYS: z.coerce.number().int().min(1).max(3_650).default(7),
  /**
   * The key every e-commerce process shares to sign and verify service-to-service requests (a replica region's
   * sensor batches forwarded to the writer's): Standard Webhooks form, `whsec_` + base64 of at least 32 random
   * bytes. No default on purpose: the start scripts make one per run when it is unset; e-commerce refuses to
   * start without it.
   */
  BV_INTERNAL_SIGNING_KEY: z.string().refine((v) => {
    try {
      return v.startsWith("whsec_") && atob(v.slice("whsec_".length)).length >= 32;
    } catch {
      return false;
    }
  }, "must be whsec_ and base64 of at least 32 bytes (whsec_$(openssl rand -base64 32))").optional(),
  KAFKA_EAST_PORT: port.default(9092),
  KAFKA_WEST_PORT: port.default(9192),
  BV_PG_URL: url.default("postgres://postgres@127.0.0.1:5432/postgres"),
  BV_EAST_PG_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]*$/).default("bv_east"),
  BV_WEST_PG_DATABASE: z.string().regex(/^[a-z_][a-z0-9_]*$/).default("bv_west"),
  /**
   * A region's own PostgreSQL server (admin URL; the database name comes from BV_<REGION>_PG_DATABASE).
   * Unset: BV_PG_URL. `start:infra` sets them to the project's clusters (scripts/postgres, ports 5433/5434).
   */
  BV_EAST_PG_URL: url.optional(),
  BV_WEST_PG_URL: url.optional(),
  /**
   * Order replication writer → replica (start:infra): `sync` makes an order commit wait until the replica
   * has applied it (RPO 0, costs latency and blocks writes while the replica is down); `async` does not.
   */
  BV_ORDER_REPLICATION: z.enum(["async", "sync"]).default("async"),
  BV_REDIS_URL: url.default("redis://127.0.0.1:6379"),
  /** Keys of a region are `<prefix><region>:`; tests set a unique prefix. */
  BV_REDIS_PREFIX: z.string().default("bv:"),
  BV_AMQP_URL: url.default("amqp://guest:guest@127.0.0.1:5672"),
  BV_EAST_AMQP_VHOST: z.string().min(1).default("bv_east"),
  BV_WEST_AMQP_VHOST: z.string().min(1).default("bv_west"),
  BV_MQTT_URL: url.default("mqtt://127.0.0.1:1883"),
  /**
   * A region's own MQTT broker (infra mode; embedded, each region has its aedes). Unset: BV_MQTT_URL. When both regions
   * reach the same broker, their sensor bridges subscribe through one shared-subscription group, so each reading
   * reaches one region, not both (regional/ecommerce/sensors/README.md).
   */
  BV_EAST_MQTT_URL: url.optional(),
  BV_WEST_MQTT_URL: url.optional(),
  BV_ADMIN_EMAIL: z.email().default("admin@bitvelocity.local"),
  BV_ADMIN_PASSWORD: z.string().min(8).default("bitvelocity-admin"),
  BV_JWT_ISSUER: z.string().min(1).default("bitvelocity-auth"),
  BV_JWT_AUDIENCE: z.string().min(1).default("bitvelocity"),
  BV_ACCESS_TOKEN_TTL_SEC: z.coerce.number().int().min(30).max(86_400).default(900),
  /**
   * How long after its rotation a refresh token may be presented once more, as the retry of an answer that was lost
   * (a dropped connection, a 504 from the edge or a forward to the writer region), and be answered in the same
   * session instead of revoking it as reuse (regional/security/auth/README.md). 0 disables the window. Keep it above
   * BV_CALL_TIMEOUT_MS plus a client's retry delay.
   */
  BV_REFRESH_REUSE_GRACE_MS: z.coerce.number().int().min(0).max(300_000).default(30_000),
  /**
   * The security service's trusted proxies: the addresses our edges and ingress connect from, whose
   * `X-Forwarded-For` entries are passed over to find the client a login counts against (comma-separated CIDRs or
   * single addresses). List an edge's public address when it reaches the ingress from one, or every client behind it
   * counts as that edge; narrow the default to the hops' own ranges where clients share a trusted network.
   */
  BV_TRUSTED_PROXIES: trustedProxies.default(TRUSTED_PROXIES_DEFAULT),
  /** Upper bound of any outgoing call (HTTP between services, readiness checks). */
  BV_CALL_TIMEOUT_MS: z.coerce.number().int().min(50).max(120_000).default(5_000),
  /** Grace period to drain on SIGINT/SIGTERM before closing anyway. */
  BV_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(100).max(120_000).default(10_000),
  /**
   * On SIGTERM, how long a process keeps serving with `/readyz` at 503 before it stops accepting, so the edge
   * takes the region out first: its probes come every 2 s and time out after 1 s, plus 1 s of slack. Part of
   * BV_SHUTDOWN_GRACE_MS (at most half of it); not waited on SIGINT (shared/runtime/lifecycle.ts says why).
   */
  BV_DRAIN_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(4_000),
} as const;

/** Variables whose value a configuration error must not print. */
const SECRET_VARIABLES: ReadonlySet<string> = new Set(["BV_INTERNAL_SIGNING_KEY"]);

type Variables = { readonly [K in keyof typeof variables]: z.output<(typeof variables)[K]> };

export interface RegionEndpoints {
  readonly region: Region;
  readonly ingressPort: number;
  readonly grpcInventoryPort: number;
  readonly servicePorts: Readonly<Record<ServiceName, number>>;
  readonly embeddedMqttPort: number;
  /** Infra mode: the region's MQTT broker (`BV_<REGION>_MQTT_URL`, else BV_MQTT_URL). */
  readonly mqttUrl: string;
  readonly kafkaBrokers: readonly string[];
  readonly pgUrl: string;
  readonly pgDatabase: string;
  /** The region's server with the `postgres` database: where its database is created or dropped. */
  readonly pgAdminUrl: string;
  readonly redisPrefix: string;
  readonly amqpUrl: string;
  readonly amqpVhost: string;
}

export interface Config extends Variables {
  readonly regions: Readonly<Record<Region, RegionEndpoints>>;
  /**
   * `BV_HOST` as the host part of a URL to this host's processes: a wildcard bind address becomes loopback
   * (`0.0.0.0` → `127.0.0.1`, `::` → `[::1]`) and an IPv6 address gets its brackets (`http://:::8110` was no URL).
   */
  readonly connectHost: string;
  /** `BV_GRPC_HOST` as the host part of an address to this host's gRPC servers, made like `connectHost`. */
  readonly grpcConnectHost: string;
}

/** The host part of a URL that reaches a listener bound to `bindHost` from this host. */
export function connectHostOf(bindHost: string): string {
  if (bindHost === "0.0.0.0") return "127.0.0.1";
  if (bindHost === "::" || bindHost === "::0") return "[::1]";
  return bindHost.includes(":") ? `[${bindHost}]` : bindHost;
}

function regionEndpoints(v: Variables, region: Region): RegionEndpoints {
  const upper = region === "east" ? "EAST" : "WEST";
  const base = v[`BV_${upper}_SERVICE_PORT_BASE`];
  const servicePorts = Object.fromEntries(SERVICES.map((s, i) => [s, base + i])) as Record<ServiceName, number>;
  const pgDatabase = v[`BV_${upper}_PG_DATABASE`];
  const pgAdminUrl = v[`BV_${upper}_PG_URL`] ?? v.BV_PG_URL;
  const pgUrl = new URL(pgAdminUrl);
  pgUrl.pathname = `/${pgDatabase}`;
  const amqpVhost = v[`BV_${upper}_AMQP_VHOST`];
  const amqpUrl = new URL(v.BV_AMQP_URL);
  amqpUrl.pathname = `/${encodeURIComponent(amqpVhost)}`;
  return Object.freeze({
    region,
    ingressPort: v[`BV_${upper}_INGRESS_PORT`],
    grpcInventoryPort: v[`BV_${upper}_GRPC_INVENTORY_PORT`],
    servicePorts: Object.freeze(servicePorts),
    embeddedMqttPort: v[`BV_${upper}_EMBEDDED_MQTT_PORT`],
    mqttUrl: v[`BV_${upper}_MQTT_URL`] ?? v.BV_MQTT_URL,
    kafkaBrokers: Object.freeze([`127.0.0.1:${v[`KAFKA_${upper}_PORT`]}`]),
    pgUrl: pgUrl.toString(),
    pgDatabase,
    pgAdminUrl,
    redisPrefix: `${v.BV_REDIS_PREFIX}${region}:`,
    amqpUrl: amqpUrl.toString(),
    amqpVhost,
  });
}

/** Parses `env`; throws {@linkcode ConfigError} naming the first bad variable. */
export function loadConfig(env: Readonly<Record<string, string | undefined>>): Config {
  const parsed: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(variables)) {
    const raw = env[name];
    const result = (schema as z.ZodType).safeParse(raw === "" ? undefined : raw);
    if (!result.success) {
      // A secret is never echoed: the line goes to logs.
      const shown = raw === undefined
        ? "is missing"
        : SECRET_VARIABLES.has(name)
        ? "is malformed"
        : `is malformed ("${raw.slice(0, 80)}")`;
      throw new ConfigError(name, `${shown}: ${result.error.issues[0]?.message ?? "invalid"}`);
    }
    parsed[name] = result.data;
  }
  const v = parsed as Variables;
  return Object.freeze({
    ...v,
    regions: Object.freeze({ east: regionEndpoints(v, "east"), west: regionEndpoints(v, "west") }),
    connectHost: connectHostOf(v.BV_HOST),
    grpcConnectHost: connectHostOf(v.BV_GRPC_HOST),
  });
}

/** Reads the process environment once; on a bad variable prints one line and exits. */
export function loadConfigOrExit(): Config {
  try {
    return loadConfig(Deno.env.toObject());
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      Deno.exit(78);
    }
    throw error;
  }
}

/** The region named by `BV_REGION` (required for per-region processes). */
export function regionFromEnvOrExit(): Region {
  const value = Deno.env.get("BV_REGION");
  if (value === "east" || value === "west") return value;
  console.error(
    `Configuration error: BV_REGION ${value === undefined ? "is missing" : `is malformed ("${value}")`}: ` +
      `expected "east" or "west"`,
  );
  Deno.exit(78);
}
