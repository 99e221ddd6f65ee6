/** @module Process entry point: `BV_REGION=east deno run -A regional/chat/main.ts`. */
import { runServiceProcess } from "../wiring/run_service.ts";
import { createChatService } from "./mod.ts";

await runServiceProcess("chat", createChatService);
