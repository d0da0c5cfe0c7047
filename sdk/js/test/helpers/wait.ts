/**
 * Waits until cond() holds, checking every few milliseconds, and fails
 * with what it waited for once timeout ms have passed. Tests wait on
 * conditions, never on time. cond may ask something asynchronously, such
 * as the server API; the next check starts when its answer is in.
 */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeout = 10_000): Promise<void> {
  const deadline = Date.now() + timeout;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Resolves with the first event that passes check, failing after timeout ms. */
export function nextEvent<E>(
  on: (listener: (e: E) => void) => void,
  off: (listener: (e: E) => void) => void,
  what: string,
  check: (e: E) => boolean = () => true,
  timeout = 10_000,
): Promise<E> {
  return new Promise<E>((resolve, reject) => {
    const timer = setTimeout(() => {
      off(listener);
      reject(new Error(`timed out after ${timeout} ms waiting for ${what}`));
    }, timeout);
    function listener(e: E) {
      if (!check(e)) return;
      clearTimeout(timer);
      off(listener);
      resolve(e);
    }
    on(listener);
  });
}
