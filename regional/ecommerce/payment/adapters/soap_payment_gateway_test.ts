/**
 * The payment adapter against the simulated gateway over real SOAP and HTTP on loopback: results, the
 * retry → open circuit → REST fallback → half-open recovery cycle, timeouts, total outage and idempotency.
 * Delays are small (timeouts 150-500 ms, half-open after 300 ms) so the file runs in a few seconds.
 */
import assert from "node:assert/strict";
import { ProblemError } from "../../../../shared/contracts/problem.ts";
import { metrics } from "../../../../shared/observability/mod.ts";
import { startPaymentGatewaySimulator } from "./soap_gateway_server.ts";
import { createSoapPaymentGateway, type PaymentGatewayEvent } from "./soap_payment_gateway.ts";

const HALF_OPEN_AFTER_MS = 300;
const fixedRandom = () => 0.5;

/** The adapter and the simulator it charges through, with every event the adapter reported. */
async function setUp(options: { timeoutMs?: number; attempts?: number; threshold?: number; latencyMs?: number } = {}) {
  const simulator = await startPaymentGatewaySimulator({ port: 0, random: fixedRandom, latencyMs: options.latencyMs });
  const events: PaymentGatewayEvent[] = [];
  const gateway = await createSoapPaymentGateway({
    wsdlUrl: simulator.wsdlUrl,
    fallbackUrl: simulator.restUrl,
    timeoutMs: options.timeoutMs ?? 500,
    attempts: options.attempts ?? 5,
    breaker: { threshold: options.threshold ?? 3, halfOpenAfterMs: HALF_OPEN_AFTER_MS },
    backoff: { initialDelayMs: 10, maxDelayMs: 40 },
    random: fixedRandom,
    onEvent: (event) => events.push(event),
  });
  const attempts = (orderId: string) =>
    events.filter((e) => e.type === "attempt" && e.orderId === orderId).map((e) =>
      e.type === "attempt" ? `${e.via}:${e.outcome}` : ""
    );
  const circuit = () => events.flatMap((e) => e.type === "circuit" ? [e.state] : []);
  return {
    simulator,
    gateway,
    attempts,
    circuit,
    async [Symbol.asyncDispose]() {
      gateway.close();
      await simulator.close();
    },
  };
}

const usd = (orderId: string, amount = "25.00") => ({ orderId, amount, currency: "USD" });

Deno.test("charge() approves over SOAP and returns the gateway's auth code", async () => {
  await using t = await setUp();
  const result = await t.gateway.charge(usd("o-approve", "129.5"));
  assert.equal(result.status, "APPROVED");
  assert.equal(result.via, "soap");
  assert.match(result.status === "APPROVED" ? result.authCode : "", /^AUTH-/);
  assert.deepEqual(t.attempts("o-approve"), ["soap:approved"]);
  assert.equal(t.simulator.charges(), 1);
});

Deno.test("a DECLINED answer is a result: no retry, no fallback, the circuit stays closed", async () => {
  await using t = await setUp({ threshold: 1 });
  const result = await t.gateway.charge(usd("o-decline", "10.13"));
  assert.deepEqual(result, {
    status: "DECLINED",
    reason: 'Card declined by issuer (simulator rule: amount "10.13" ends in .13)',
    via: "soap",
  });
  assert.deepEqual(t.attempts("o-decline"), ["soap:declined"]);
  assert.equal(t.gateway.circuitState(), "closed");
  assert.deepEqual(t.simulator.requests(), { soap: 1, rest: 0 });
});

Deno.test("SOAP failures are retried, open the circuit, go to the REST fallback, and recover over SOAP", async () => {
  await using t = await setUp({ attempts: 5, threshold: 3 });
  assert.equal((await t.gateway.charge(usd("o-before"))).via, "soap");

  t.simulator.setBehaviour({ failureRate: 1 });
  const during = await t.gateway.charge(usd("o-during"));
  // Three consecutive failures open the circuit; the 4th attempt is refused by the open circuit, so the
  // charge goes to the fallback after 3 SOAP calls, not 5.
  assert.equal(during.status, "APPROVED");
  assert.equal(during.via, "rest-fallback");
  assert.deepEqual(t.attempts("o-during"), ["soap:failed", "soap:failed", "soap:failed", "rest-fallback:approved"]);
  assert.equal(t.gateway.circuitState(), "open");
  assert.deepEqual(t.simulator.requests(), { soap: 4, rest: 1 });

  const whileOpen = await t.gateway.charge(usd("o-open"));
  assert.equal(whileOpen.via, "rest-fallback");
  assert.deepEqual(t.attempts("o-open"), ["rest-fallback:approved"], "an open circuit sends no SOAP call");

  t.simulator.setBehaviour({ failureRate: 0 });
  await new Promise((resolve) => setTimeout(resolve, HALF_OPEN_AFTER_MS + 50));
  const after = await t.gateway.charge(usd("o-after"));
  assert.equal(after.via, "soap", "the half-open probe succeeded and traffic is back on SOAP");
  assert.deepEqual(t.attempts("o-after"), ["soap:approved"]);
  assert.equal(t.gateway.circuitState(), "closed");
  assert.deepEqual(t.circuit(), ["open", "half-open", "closed"]);
  assert.equal((await t.gateway.charge(usd("o-later"))).via, "soap");
  assert.equal(t.simulator.charges(), 5);
});

Deno.test("a failed half-open probe reopens the circuit and the charge still succeeds over the fallback", async () => {
  await using t = await setUp({ attempts: 3, threshold: 2 });
  t.simulator.setBehaviour({ failureRate: 1 });
  assert.equal((await t.gateway.charge(usd("o-1"))).via, "rest-fallback");
  await new Promise((resolve) => setTimeout(resolve, HALF_OPEN_AFTER_MS + 50));
  const probed = await t.gateway.charge(usd("o-2"));
  assert.equal(probed.via, "rest-fallback");
  assert.deepEqual(t.attempts("o-2"), ["soap:failed", "rest-fallback:approved"], "one probe, then no more SOAP");
  assert.equal(t.gateway.circuitState(), "open");
  assert.deepEqual(t.circuit(), ["open", "half-open", "open"]);
});

Deno.test("SOAP answers slower than the per-attempt timeout count as failures and open the circuit", async () => {
  await using t = await setUp({ timeoutMs: 150, attempts: 5, threshold: 2, latencyMs: 400 });
  const started = performance.now();
  const result = await t.gateway.charge(usd("o-slow"));
  const elapsedMs = performance.now() - started;
  assert.equal(result.via, "rest-fallback");
  assert.deepEqual(t.attempts("o-slow"), ["soap:timeout", "soap:timeout", "rest-fallback:approved"]);
  assert.equal(t.gateway.circuitState(), "open");
  // Two 150 ms attempts, one backoff of at most 10 ms, then the fallback; waiting for the two 400 ms SOAP
  // answers would take at least 800 ms.
  assert.ok(elapsedMs < 2 * 400, `took ${Math.round(elapsedMs)} ms`);
  // Each abandoned attempt reached the gateway exactly once (no keep-alive resend, denoland/deno#36786),
  // and still reaches its books; idempotency keeps it to one charge.
  assert.equal(t.simulator.requests().soap, 2);
  // Let the gateway finish the abandoned calls (latency 400 ms from their arrival) before counting.
  await new Promise((resolve) => setTimeout(resolve, 450));
  assert.equal(t.simulator.charges(), 1);
});

Deno.test("SOAP and the REST fallback both down → ECOMMERCE.PAYMENT_UNAVAILABLE within the policy's bound", async () => {
  await using t = await setUp({ timeoutMs: 200, attempts: 5, threshold: 5 });
  t.simulator.setBehaviour({ soapDown: true, restDown: true });
  const started = performance.now();
  await assert.rejects(t.gateway.charge(usd("o-down")), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "ECOMMERCE.PAYMENT_UNAVAILABLE");
    assert.equal(error.status, 503);
    assert.match(error.message, /order "o-down" is not confirmed.*HTTP 503.*retry later with the same order id/);
    assert.equal(error.headers?.["retry-after"], "1");
    return true;
  });
  const elapsedMs = performance.now() - started;
  // Worst case: 5 attempts × 200 ms + backoffs (10+20+40+40 ms caps) + the fallback's 200 ms.
  assert.ok(elapsedMs < 5 * 200 + 110 + 200, `took ${Math.round(elapsedMs)} ms`);
  assert.deepEqual(t.attempts("o-down"), [...Array(5).fill("soap:failed"), "rest-fallback:failed"]);
  assert.equal(t.gateway.circuitState(), "open");
  assert.equal(t.simulator.charges(), 0);
});

Deno.test("a gateway down at startup is picked up lazily once it answers", async () => {
  const probe = await startPaymentGatewaySimulator({ port: 0 });
  const port = Number(new URL(probe.url).port);
  await probe.close();
  const gateway = await createSoapPaymentGateway({
    wsdlUrl: `http://127.0.0.1:${port}/soap/payment?wsdl`,
    fallbackUrl: `http://127.0.0.1:${port}/rest/payments`,
    timeoutMs: 200,
    attempts: 2,
    backoff: { initialDelayMs: 10, maxDelayMs: 10 },
  });
  try {
    await assert.rejects(gateway.charge(usd("o-early")), { code: "ECOMMERCE.PAYMENT_UNAVAILABLE" });
    const simulator = await startPaymentGatewaySimulator({ port });
    try {
      const result = await gateway.charge(usd("o-late"));
      assert.deepEqual([result.status, result.via], ["APPROVED", "soap"]);
    } finally {
      await simulator.close();
    }
  } finally {
    gateway.close();
  }
});

Deno.test("a repeated charge of one order returns the first auth code and charges once", async () => {
  await using t = await setUp();
  const first = await t.gateway.charge(usd("o-twice", "60.00"));
  t.simulator.setBehaviour({ failureRate: 1 });
  const second = await t.gateway.charge(usd("o-twice", "60.0"));
  assert.equal(second.via, "rest-fallback");
  assert.equal(
    second.status === "APPROVED" ? second.authCode : "",
    first.status === "APPROVED" ? first.authCode : "",
  );
  assert.equal(t.simulator.charges(), 1);
});

Deno.test("invalid requests are refused before any call; a different amount for a charged order is a conflict", async () => {
  await using t = await setUp();
  for (const request of [usd("o 1"), usd("o-1", "12.345"), usd("o-1", "-1.00"), { ...usd("o-1"), currency: "usd" }]) {
    await assert.rejects(t.gateway.charge(request), { code: "COMMON.VALIDATION_FAILED" });
  }
  assert.deepEqual(t.simulator.requests(), { soap: 0, rest: 0 });
  await t.gateway.charge(usd("o-2", "10.00"));
  await assert.rejects(t.gateway.charge(usd("o-2", "11.00")), (error) => {
    assert.ok(error instanceof ProblemError);
    assert.equal(error.code, "COMMON.CONFLICT");
    assert.match(error.message, /charged 10\.00 USD, not 11\.00 USD/);
    return true;
  });
  assert.deepEqual(t.attempts("o-2"), ["soap:approved", "soap:rejected"], "a refusal is not retried");
  assert.equal(t.gateway.circuitState(), "closed");
});

Deno.test("attempts and the circuit state are exported as Prometheus metrics", async () => {
  await using t = await setUp({ threshold: 1, attempts: 1 });
  await t.gateway.charge(usd("o-m1"));
  t.simulator.setBehaviour({ failureRate: 1 });
  await t.gateway.charge(usd("o-m2"));
  const text = await metrics.render();
  assert.match(text, /bv_payment_attempts_total\{via="soap",outcome="approved"\} \d+/);
  assert.match(text, /bv_payment_attempts_total\{via="rest-fallback",outcome="approved"\} \d+/);
  assert.match(text, /bv_payment_circuit_state 1/);
});

Deno.test("options out of range fail at setup, naming the option", async () => {
  await assert.rejects(
    createSoapPaymentGateway({ wsdlUrl: "http://127.0.0.1:1/x?wsdl", fallbackUrl: "http://127.0.0.1:1/", attempts: 0 }),
    /Option attempts is 0; pass an integer from 1 to 10/,
  );
  await assert.rejects(
    createSoapPaymentGateway({ wsdlUrl: "not a url", fallbackUrl: "http://127.0.0.1:1/" }),
    /Option wsdlUrl "not a url" is not a URL/,
  );
});
