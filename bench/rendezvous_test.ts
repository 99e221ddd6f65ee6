import assert from "node:assert/strict";
import { createRendezvous } from "./rendezvous.ts";

Deno.test("createRendezvous() resolves a wait when its id arrives and ignores unknown ids", async () => {
  const rendezvous = createRendezvous();
  try {
    const waiting = rendezvous.expect("a");
    assert.equal(rendezvous.arrive("stray"), false);
    assert.equal(rendezvous.arrive("a"), true);
    await waiting;
    // A redelivery of an id already consumed is not an error.
    assert.equal(rendezvous.arrive("a"), false);
  } finally {
    rendezvous.close();
  }
});

Deno.test("createRendezvous() refuses to wait twice for the same id", async () => {
  const rendezvous = createRendezvous();
  try {
    const first = rendezvous.expect("a");
    await assert.rejects(rendezvous.expect("a"), /already awaited/);
    rendezvous.arrive("a");
    await first;
  } finally {
    rendezvous.close();
  }
});

Deno.test("createRendezvous() rejects a wait older than its timeout instead of hanging", async () => {
  let nowMs = 0;
  // The watchdog looks every millisecond; the clock it reads is fake, so the timeout passes without sleeping.
  const rendezvous = createRendezvous({ timeoutMs: 1_000, checkEveryMs: 1, now: () => nowMs });
  try {
    const lost = rendezvous.expect("lost");
    nowMs = 1_000;
    await assert.rejects(lost, /"lost" was not consumed within 1000 ms/);
  } finally {
    rendezvous.close();
  }
});

Deno.test("createRendezvous() close() rejects every open wait", async () => {
  const rendezvous = createRendezvous();
  const open = rendezvous.expect("a");
  rendezvous.close();
  await assert.rejects(open, /Stopped waiting for message "a"/);
});
