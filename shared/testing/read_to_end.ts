/** @module A stream reader for tests: reads to the end, or fails (never hangs) when the stream does not end. */

const decoder = new TextDecoder();

/** Reads `reader` to its end as text; throws (and cancels it) when it has not ended within `timeoutMs`. */
export async function readToEnd(reader: ReadableStreamDefaultReader<Uint8Array>, timeoutMs = 5_000): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`the stream did not end within ${timeoutMs} ms`)), timeoutMs);
  });
  let text = "";
  try {
    for (let chunk = await Promise.race([reader.read(), timeout]); !chunk.done;) {
      text += decoder.decode(chunk.value);
      chunk = await Promise.race([reader.read(), timeout]);
    }
    return text;
  } catch (error) {
    await reader.cancel().catch(() => {});
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
