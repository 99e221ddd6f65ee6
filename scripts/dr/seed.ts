/**
 * @module
 * What the DR drill's orders need: an admin-created product with plenty of stock in east (the writer
 * region authors the catalog and inventory; replication carries both to west, so west can take orders
 * after its promotion), and a customer signed up through the edge.
 */

const STOCK = 1_000_000;

/** JSON POST with a timeout; throws with the answer unless it has status `expected`. */
async function post(url: string, body: unknown, expected: number, token?: string): Promise<Record<string, string>> {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await response.text();
  if (response.status !== expected) throw new Error(`POST ${url} answered ${response.status}: ${text.slice(0, 300)}`);
  return JSON.parse(text);
}

export async function seedDrill(options: {
  readonly eastIngressUrl: string;
  readonly edgeUrl: string;
  readonly admin: { readonly email: string; readonly password: string };
  readonly runId: string;
}): Promise<{ token: string; productId: string }> {
  const { eastIngressUrl: east } = options;
  const admin = (await post(`${east}/api/v1/auth/login`, options.admin, 200)).accessToken;
  const product = await post(
    `${east}/api/v1/products`,
    {
      sku: `DRILL-${options.runId}`.toUpperCase(),
      name: "Drill Widget",
      description: "Ordered by the DR drill",
      category: "drill",
      price: "1.00",
      currency: "USD",
    },
    201,
    admin,
  );
  await post(`${east}/api/v1/inventory/${product.id}/adjustments`, { delta: STOCK, reason: "dr drill" }, 200, admin);
  const customer = await post(`${options.edgeUrl}/api/v1/auth/signup`, {
    email: `drill-${options.runId}@drill.test`,
    password: "correct horse battery",
  }, 201);
  return { token: customer.accessToken, productId: product.id };
}
