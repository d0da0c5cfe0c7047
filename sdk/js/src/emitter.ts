/** A listener of events of type E. */
export type Listener<E> = (event: E) => void;

/**
 * A small typed event emitter: on, off, once, emit. A listener that throws
 * does not keep the others from running; the error is reported to
 * `onListenerError` (the console by default).
 */
export class Emitter<Events extends { [K in keyof Events]: unknown }> {
  private readonly listeners = new Map<keyof Events, Set<Listener<never>>>();

  /** Calls listener for every event of that name; returns this. */
  on<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    let set = this.listeners.get(event);
    if (!set) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener as Listener<never>);
    return this;
  }

  /** Removes a listener added with on; without one, removes all of event's. */
  off<K extends keyof Events>(event: K, listener?: Listener<Events[K]>): this {
    if (!listener) this.listeners.delete(event);
    else this.listeners.get(event)?.delete(listener as Listener<never>);
    return this;
  }

  /** Calls listener for the next event of that name only. */
  once<K extends keyof Events>(event: K, listener: Listener<Events[K]>): this {
    const wrapped: Listener<Events[K]> = (e) => {
      this.off(event, wrapped);
      listener(e);
    };
    return this.on(event, wrapped);
  }

  /** Removes every listener of every event. */
  removeAllListeners(): this {
    this.listeners.clear();
    return this;
  }

  protected emit<K extends keyof Events>(event: K, payload: Events[K]): void {
    const set = this.listeners.get(event);
    if (!set) return;
    for (const l of [...set]) {
      try {
        (l as Listener<Events[K]>)(payload);
      } catch (err) {
        this.onListenerError(err, String(event));
      }
    }
  }

  protected onListenerError(err: unknown, event: string): void {
    // A listener's bug must not break the client's state machine.
    if (typeof console !== 'undefined') console.error(`herald: "${event}" listener threw`, err);
  }
}
