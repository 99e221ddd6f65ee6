/** @module Process entry point: `BV_REGION=east deno run -A regional/security/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createSecurityService } from "./mod.ts";

await runServiceProcess("security", createSecurityService);
