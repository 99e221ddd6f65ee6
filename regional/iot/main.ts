/** @module Process entry point: `BV_REGION=east deno run -A regional/iot/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createIotService } from "./mod.ts";

await runServiceProcess("iot", createIotService);
