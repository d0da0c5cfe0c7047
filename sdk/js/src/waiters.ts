import { TimeoutError } from './errors.js';

/** Promises waiting for one outcome (connected, subscribed), settled all at once. */
export class Waiters {
  private list: Array<{ resolve(): void; reject(e: Error): void }> = [];

  /** A promise settled by resolveAll or rejectAll, or rejected after timeout ms. */
  wait(timeout: number | undefined, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const w = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (e: Error) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.list.push(w);
      if (timeout !== undefined && timeout > 0) {
        timer = setTimeout(() => {
          this.list = this.list.filter((x) => x !== w);
          reject(new TimeoutError(`${what} within ${timeout} ms`));
        }, timeout);
      }
    });
  }

  resolveAll(): void {
    const l = this.list;
    this.list = [];
    for (const w of l) w.resolve();
  }

  rejectAll(err: Error): void {
    const l = this.list;
    this.list = [];
    for (const w of l) w.reject(err);
  }
}
