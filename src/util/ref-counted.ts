// One shared instance per key (a gateway context, a store) for as long as someone holds it:
// the authenticators and endpoints of one loaded config share caches and subscriptions, and
// the last `release` disposes of them (reload, stop).

export interface Held<T> {
  readonly value: T;
  /** Idempotent; the last holder's release disposes of the value. */
  release(): void;
}

/** `args` are used only by the call that creates the value. */
export function refCounted<K extends object, T, A extends unknown[] = []>(create: (key: K, ...args: A) => T, dispose: (value: T) => void): (key: K, ...args: A) => Held<T> {
  const shared = new WeakMap<K, { value: T; refs: number }>();
  return (key, ...args) => {
    let entry = shared.get(key);
    if (entry === undefined) {
      entry = { value: create(key, ...args), refs: 0 };
      shared.set(key, entry);
    }
    entry.refs++;
    const held = entry;
    let released = false;
    return {
      value: held.value,
      release: () => {
        if (released) return;
        released = true;
        if (--held.refs > 0) return;
        dispose(held.value);
        if (shared.get(key) === held) shared.delete(key);
      },
    };
  };
}
