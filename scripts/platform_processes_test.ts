/** What the development starts put in the environment their children inherit. */
import assert from "node:assert/strict";
import { ensureDevelopmentWebhookEgress } from "./platform_processes.ts";

Deno.test("ensureDevelopmentWebhookEgress() sets BV_WEBHOOK_EGRESS=any only when it is unset", () => {
  const before = Deno.env.get("BV_WEBHOOK_EGRESS");
  try {
    Deno.env.delete("BV_WEBHOOK_EGRESS");
    ensureDevelopmentWebhookEgress();
    assert.equal(Deno.env.get("BV_WEBHOOK_EGRESS"), "any");
    // A developer who asked for the production policy keeps it.
    Deno.env.set("BV_WEBHOOK_EGRESS", "public");
    ensureDevelopmentWebhookEgress();
    assert.equal(Deno.env.get("BV_WEBHOOK_EGRESS"), "public");
  } finally {
    if (before === undefined) Deno.env.delete("BV_WEBHOOK_EGRESS");
    else Deno.env.set("BV_WEBHOOK_EGRESS", before);
  }
});
