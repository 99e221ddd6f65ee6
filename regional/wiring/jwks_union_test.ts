import assert from "node:assert/strict";
import { createJwksUnion } from "./jwks_union.ts";

/** A real HTTP server publishing one region's key set. */
function region(kid: string) {
  const server = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () =>
      Response.json({ keys: [{ kty: "OKP", crv: "Ed25519", x: "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo", kid }] }),
  );
  return { url: `http://127.0.0.1:${server.addr.port}/.well-known/jwks.json`, stop: () => server.shutdown() };
}

Deno.test({
  name: "createJwksUnion() serves every region's keys and keeps a region's last keys while it is down",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const east = region("east-1");
    const west = region("west-1");
    const union = createJwksUnion({ urls: [west.url, east.url], timeoutMs: 1_000, refreshMs: 0 });
    try {
      const kids = async () => (await union.load()).keys.map((k) => k.kid).sort();
      assert.deepEqual(await kids(), ["east-1", "west-1"]);
      await east.stop();
      assert.deepEqual(await kids(), ["east-1", "west-1"]);
    } finally {
      union.stop();
      await west.stop();
    }
  },
});

Deno.test("createJwksUnion() rejects only when no region's keys were ever loaded", async () => {
  const gone = region("gone");
  await gone.stop();
  const union = createJwksUnion({ urls: [gone.url], timeoutMs: 500, refreshMs: 0 });
  try {
    await assert.rejects(union.load(), /No region's JWKS could be loaded/);
  } finally {
    union.stop();
  }
});
