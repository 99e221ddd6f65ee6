/**
 * @module
 * Kafka's key hash (murmur2, as in the Java client and kafkajs's DefaultPartitioner), so the embedded event
 * log puts a key in the same partition number as a real cluster with the same partition count would.
 */

const encoder = new TextEncoder();

/** The partition of `key` among `partitions`: `toPositive(murmur2(utf8(key))) % partitions`. */
export function partitionOfKey(key: string, partitions: number): number {
  return (murmur2(encoder.encode(key)) & 0x7fffffff) % partitions;
}

/** 32-bit murmur2 with Kafka's seed; `Math.imul` keeps the arithmetic in Java `int` semantics. */
export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const words = length >>> 2;
  for (let i = 0; i < words; i++) {
    const i4 = i * 4;
    let k = data[i4] | (data[i4 + 1] << 8) | (data[i4 + 2] << 16) | (data[i4 + 3] << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
  }
  const tail = length & ~3;
  const rest = length % 4;
  if (rest === 3) h ^= data[tail + 2] << 16;
  if (rest >= 2) h ^= data[tail + 1] << 8;
  if (rest >= 1) h = Math.imul(h ^ data[tail], m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
