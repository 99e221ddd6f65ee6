/**
 * @module
 * A health server in a process of its own, for `grpc_test.ts`: the test kills it with SIGKILL to restart a
 * server without a GOAWAY reaching the test process (a GOAWAY can crash a Deno client, denoland/deno#36788).
 * Usage: `deno run -A _health_server_for_test.ts <port>`; prints the bound port on one line.
 */
import { setLogLevel } from "../../observability/mod.ts";
import { createHealthService, startGrpcServer } from "./mod.ts";

setLogLevel("error");
const server = await startGrpcServer({ port: Number(Deno.args[0] ?? 0), services: [createHealthService({}, 100)] });
console.log(server.port);
