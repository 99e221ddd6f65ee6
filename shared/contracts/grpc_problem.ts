/**
 * @module
 * The way back from a gRPC status to a problem code, for clients. `grpcStatusOf` in `problem.ts` is the
 * way there; together they are the one mapping between problem codes and gRPC. No driver is imported:
 * statuses are the plain numbers of {@linkcode GrpcStatus}.
 */
import { GrpcStatus, type ProblemCode, problemCodes } from "./problem.ts";

/** Trailing metadata key in which a server sends the stable problem code next to the gRPC status. */
export const PROBLEM_CODE_METADATA = "bv-problem-code";

/** Whether `value` is one of the stable problem codes. */
export function isProblemCode(value: unknown): value is ProblemCode {
  return typeof value === "string" && Object.hasOwn(problemCodes, value);
}

/**
 * The problem code a client reports for a failed gRPC call. Transport outcomes win over what the server
 * said, because the caller's reaction depends on them: UNAVAILABLE is `COMMON.UPSTREAM_UNAVAILABLE`
 * (safe to retry) and DEADLINE_EXCEEDED is `COMMON.UPSTREAM_TIMEOUT` (outcome unknown). Any other status
 * keeps the server's stable code (`bv-problem-code`) when it is one we know, else `COMMON.INTERNAL`.
 */
export function problemCodeOfGrpc(status: number, serverCode?: string): ProblemCode {
  if (status === GrpcStatus.UNAVAILABLE) return "COMMON.UPSTREAM_UNAVAILABLE";
  if (status === GrpcStatus.DEADLINE_EXCEEDED) return "COMMON.UPSTREAM_TIMEOUT";
  return isProblemCode(serverCode) ? serverCode : "COMMON.INTERNAL";
}
