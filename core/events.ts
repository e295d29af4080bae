import type { EventBus, EventData } from './contracts.js';

type Listener = (data: never) => void;

/**
 * A synchronous publish/subscribe bus, one per kernel. The core carries events and knows nothing of
 * them. `emit` with nobody listening is one map lookup, so emitters on hot paths can call it freely
 * (and check `listening()` first when building the event costs something).
 */
export class KernelEvents implements EventBus {
  private readonly listeners = new Map<string, readonly { fn: Listener; owner: string }[]>();

  constructor(private readonly onListenerError: (name: string, owner: string, err: unknown) => void) {}

  on<K extends string>(name: K, listener: (data: EventData<K>) => void, owner = 'app'): () => void {
    const entry = { fn: listener as Listener, owner };
    // copy on write: an emit in progress keeps the list it started with
    this.listeners.set(name, [...(this.listeners.get(name) ?? []), entry]);
    return () => {
      const left = (this.listeners.get(name) ?? []).filter((e) => e !== entry);
      if (left.length > 0) this.listeners.set(name, left);
      else this.listeners.delete(name);
    };
  }

  listening(name: string): boolean {
    return this.listeners.has(name);
  }

  emit<K extends string>(name: K, data: EventData<K>): void {
    const list = this.listeners.get(name);
    if (list === undefined) return;
    for (const { fn, owner } of list) {
      // a failing listener must not break the emitter, which may be answering a call
      try {
        (fn as (data: EventData<K>) => void)(data);
      } catch (err) {
        this.onListenerError(name, owner, err);
      }
    }
  }
}
