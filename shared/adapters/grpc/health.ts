/**
 * @module
 * grpc.health.v1.Health over the same readiness checks `/readyz` runs, so a gRPC load balancer (or
 * `grpc_health_probe`, or a Kubernetes `grpc` probe) sees the same readiness as an HTTP one.
 */
import type * as grpc from "@grpc/grpc-js";
import { ProblemError } from "../../contracts/problem.ts";
import { type ReadinessCheck, runReadiness } from "../../runtime/readiness.ts";
import { loadProto, serviceClientOf } from "./_proto.ts";
import type { GrpcServiceBinding } from "./server.ts";

/** The fully qualified name of the standard health service. */
export const HEALTH_SERVICE_NAME = "grpc.health.v1.Health";

/** A HealthCheckRequest is one service name: 1 KiB leaves room for any name a probe sends. */
const HEALTH_REQUEST_BYTES_MAX = 1024;

let healthClient: grpc.ServiceClientConstructor | undefined;

/** The client constructor (and, through `.service`, the definition) of grpc.health.v1.Health. */
export function healthClientConstructor(): grpc.ServiceClientConstructor {
  healthClient ??= serviceClientOf(loadProto("grpc/health/v1/health.proto"), HEALTH_SERVICE_NAME);
  return healthClient;
}

/**
 * The health service. `Check` with service `""` runs every check (SERVING only when all pass); with the
 * name of one check it runs that one; any other name is NOT_FOUND, as the protocol asks. Each check is
 * bounded by `timeoutMs`, and nothing is cached, exactly like `/readyz`. `Watch` answers UNIMPLEMENTED.
 */
export function createHealthService(
  checks: Readonly<Record<string, ReadinessCheck>>,
  timeoutMs: number,
): GrpcServiceBinding {
  if (!(timeoutMs > 0)) throw new RangeError(`createHealthService() timeoutMs must be positive, got ${timeoutMs}`);
  if ("" in checks) throw new TypeError(`A readiness check may not be named "": that name means the whole server`);
  return {
    definition: healthClientConstructor().service,
    requestBytesMax: HEALTH_REQUEST_BYTES_MAX,
    implementation: {
      async Check(request: { service: string }) {
        const service = request.service;
        if (service !== "" && !Object.hasOwn(checks, service)) {
          const known = Object.keys(checks).map((name) => `"${name}"`).join(", ") || "none";
          throw new ProblemError("COMMON.NOT_FOUND", `Unknown health service "${service}"; known: "" (all), ${known}`);
        }
        const asked = service === "" ? checks : { [service]: checks[service] };
        const report = await runReadiness(asked, timeoutMs);
        return { status: report.ready ? "SERVING" : "NOT_SERVING" };
      },
    },
  };
}
