/**
 * @module
 * A fake region as its own process, for `edge_failover`: the scenario SIGKILLs it the way a crash would
 * and starts it again on the same port. Raw `Deno.serve` only (no imports, so it starts in ~100 ms):
 * `GET /readyz` → 200, `GET /api/v1/products/p1` → a small JSON naming the region (`x-bench-region` too,
 * so a direct client knows who answered without parsing). Prints `{"port":N}` on stdout once listening.
 *
 *     deno run --allow-net=127.0.0.1 bench/scenarios/_failover_region.ts <name> [port]
 */

const [name, portArg] = Deno.args;
if (name === undefined || !/^[a-z]{1,16}$/.test(name)) {
  console.error(`Usage: _failover_region.ts <name> [port]; got name "${name}"`);
  Deno.exit(2);
}
const port = portArg === undefined ? 0 : Number(portArg);
if (!Number.isInteger(port) || port < 0 || port > 65_535) {
  console.error(`Port "${portArg}" is not a TCP port; use 0 to 65535`);
  Deno.exit(2);
}

const productBytes = new TextEncoder().encode(JSON.stringify({ id: "p1", region: name, price: "19.99" }));
const productHeaders = { "content-type": "application/json", "x-bench-region": name };

const server = Deno.serve({ hostname: "127.0.0.1", port, onListen: () => {} }, (request) => {
  const path = new URL(request.url).pathname;
  if (path === "/readyz") return new Response(null, { status: 200 });
  if (path === "/api/v1/products/p1") return new Response(productBytes, { headers: productHeaders });
  return new Response("Not found", { status: 404 });
});
console.log(JSON.stringify({ port: server.addr.port }));
