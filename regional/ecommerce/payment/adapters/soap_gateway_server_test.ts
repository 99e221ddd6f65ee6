/**
 * The simulated legacy gateway over real HTTP on loopback: WSDL, SOAP and REST answers, idempotency across
 * both front ends, outages and the control endpoint.
 */
import assert from "node:assert/strict";
import soap from "soap";
import { startPaymentGatewaySimulator } from "./soap_gateway_server.ts";

type ProcessPayment = (args: unknown, options: { timeout: number }) => Promise<[Record<string, unknown>]>;

async function soapClientOf(wsdlUrl: string): Promise<{ describe(): unknown; ProcessPaymentAsync: ProcessPayment }> {
  return await soap.createClientAsync(wsdlUrl, { disableCache: true, wsdl_options: { timeout: 2_000 } }) as never;
}

function postJson(url: string, body: unknown): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(2_000),
  });
}

Deno.test("the WSDL is served at ?wsdl and describes ProcessPayment at the server's own address", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0 });
  try {
    const response = await fetch(gateway.wsdlUrl, { signal: AbortSignal.timeout(2_000) });
    assert.equal(response.status, 200);
    const wsdl = await response.text();
    assert.match(wsdl, /<soap:address location="http:\/\/127\.0\.0\.1:\d+\/soap\/payment"\/>/);
    const client = await soapClientOf(gateway.wsdlUrl);
    const description = client.describe() as Record<string, Record<string, Record<string, unknown>>>;
    const operation = description.PaymentService.PaymentPort.ProcessPayment as { input: Record<string, unknown> };
    assert.deepEqual(Object.keys(operation.input).filter((k) => !k.startsWith("target")), [
      "orderId",
      "amount",
      "currency",
    ]);
  } finally {
    await gateway.close();
  }
});

Deno.test("ProcessPayment over SOAP approves with an auth code and declines amounts ending in .13", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0, random: () => 0.5 });
  try {
    const client = await soapClientOf(gateway.wsdlUrl);
    const [approved] = await client.ProcessPaymentAsync({ orderId: "o-1", amount: "129.50", currency: "USD" }, {
      timeout: 2_000,
    });
    assert.equal(approved.status, "APPROVED");
    assert.match(String(approved.authCode), /^AUTH-[0-9A-Z]{6}$/);
    const [declined] = await client.ProcessPaymentAsync({ orderId: "o-2", amount: "10.13", currency: "USD" }, {
      timeout: 2_000,
    });
    assert.equal(declined.status, "DECLINED");
    assert.match(String(declined.reason), /ends in \.13/);
    assert.equal(gateway.charges(), 1);
  } finally {
    await gateway.close();
  }
});

Deno.test("two charges of one order, over SOAP then REST, charge once and return the first result", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0 });
  try {
    const client = await soapClientOf(gateway.wsdlUrl);
    const [first] = await client.ProcessPaymentAsync({ orderId: "o-9", amount: "42.00", currency: "EUR" }, {
      timeout: 2_000,
    });
    const response = await postJson(gateway.restUrl, { orderId: "o-9", amount: "42.00", currency: "EUR" });
    assert.equal(response.status, 200);
    assert.deepEqual(await response.json(), { status: "APPROVED", authCode: first.authCode });
    assert.equal(gateway.charges(), 1);
    assert.deepEqual(gateway.requests(), { soap: 1, rest: 1 });
  } finally {
    await gateway.close();
  }
});

Deno.test("the REST fallback refuses bad input with 400 and another amount for a charged order with 409", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0 });
  try {
    const bad = await postJson(gateway.restUrl, { orderId: "o-1", amount: "12.5", currency: "USD", extra: 1 });
    assert.equal(bad.status, 400);
    assert.match((await bad.json()).message, /amount/);
    assert.equal((await postJson(gateway.restUrl, { orderId: "o-1", amount: "12.50", currency: "USD" })).status, 200);
    const conflict = await postJson(gateway.restUrl, { orderId: "o-1", amount: "13.50", currency: "USD" });
    assert.equal(conflict.status, 409);
    assert.match((await conflict.json()).message, /charged 12\.50 USD, not 13\.50 USD/);
  } finally {
    await gateway.close();
  }
});

Deno.test("failureRate 1 answers every SOAP call with a Server fault and leaves REST working", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0, failureRate: 1 });
  try {
    const client = await soapClientOf(gateway.wsdlUrl);
    await assert.rejects(
      client.ProcessPaymentAsync({ orderId: "o-1", amount: "1.00", currency: "USD" }, { timeout: 2_000 }),
      /soap:Server\.Unavailable/,
    );
    assert.equal((await postJson(gateway.restUrl, { orderId: "o-1", amount: "1.00", currency: "USD" })).status, 200);
    assert.equal(gateway.charges(), 1);
  } finally {
    await gateway.close();
  }
});

Deno.test("POST /control switches outages at run time: soapDown and restDown answer 503", async () => {
  const gateway = await startPaymentGatewaySimulator({ port: 0 });
  try {
    const control = await postJson(`${gateway.url}/control`, { soapDown: true, restDown: true, latencyMs: 5 });
    assert.equal(control.status, 200);
    assert.deepEqual(await control.json(), { failureRate: 0, latencyMs: 5, soapDown: true, restDown: true });
    const wsdl = await fetch(gateway.wsdlUrl, { signal: AbortSignal.timeout(2_000) });
    assert.equal(wsdl.status, 503);
    await wsdl.body?.cancel();
    const rest = await postJson(gateway.restUrl, { orderId: "o-1", amount: "1.00", currency: "USD" });
    assert.equal(rest.status, 503);
    await rest.body?.cancel();
    const invalid = await postJson(`${gateway.url}/control`, { failureRate: 2 });
    assert.equal(invalid.status, 400);
    await invalid.body?.cancel();
    gateway.setBehaviour({ soapDown: false, restDown: false });
    assert.equal(
      (await fetch(gateway.wsdlUrl, { signal: AbortSignal.timeout(2_000) }).then((r) => r.text())).length > 0,
      true,
    );
    assert.throws(() => gateway.setBehaviour({ latencyMs: -1 }), RangeError);
  } finally {
    await gateway.close();
  }
});
