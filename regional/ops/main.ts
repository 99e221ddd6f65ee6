/** @module Process entry point: `BV_REGION=east deno run -A regional/ops/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createOpsService } from "./mod.ts";

await runServiceProcess("ops", createOpsService);
