// The contract every store driver meets (src/store/types.ts, SPEC 8). memory.test.ts,
// sqlite.test.ts and redis.test.ts run it against their driver. Timing: short TTLs, and
// conditions are polled with a bound, never asserted after a fixed sleep.
import type { Test } from 'tap';
import { StoreUnavailableError } from '../../src/errors.js';
import type { StoreLogger } from '../../src/store/shared.js';
import type { Store } from '../../src/store/types.js';

export interface OpenedStore {
  store: Store;
  /** Another instance on the same state (same sqlite file / redis prefix); absent for memory. */
  peer?: () => Promise<Store>;
}

export interface StoreHarness {
  /** A fresh, empty store; the harness closes it (and any peer) and cleans up in t.teardown. */
  open(t: Test): Promise<OpenedStore>;
}

/** Polls `cond` every `everyMs` until true or `timeoutMs` passed; returns whether it became true. */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 3000, everyMs = 10): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return true;
    if (Date.now() >= deadline) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** The rejection of a promise, or undefined when it resolves. */
export async function rejectionOf(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
    return undefined;
  } catch (err) {
    return err;
  }
}

export interface LogLine {
  level: 'info' | 'warn' | 'error';
  obj: object;
  msg: string | undefined;
}

export function captureLog(): StoreLogger & { lines: LogLine[] } {
  const lines: LogLine[] = [];
  return {
    lines,
    info: (obj, msg) => void lines.push({ level: 'info', obj, msg }),
    warn: (obj, msg) => void lines.push({ level: 'warn', obj, msg }),
    error: (obj, msg) => void lines.push({ level: 'error', obj, msg }),
  };
}

/** Calls every Store method at once; how each settled (error or undefined) and after how long. */
export async function callEveryMethod(store: Store): Promise<Array<{ name: string; err: unknown; ms: number }>> {
  const start = Date.now();
  const calls: Array<[string, () => Promise<unknown>]> = [
    ['get', () => store.get('k')],
    ['set', () => store.set('k', 'v', 1000)],
    ['setIfAbsent', () => store.setIfAbsent('k', 'v', 1000)],
    ['take', () => store.take('k')],
    ['delete', () => store.delete('k')],
    ['incr', () => store.incr('c', 1000)],
    ['ttl', () => store.ttl('k')],
    ['indexAdd', () => store.indexAdd('i', 'm', 1000)],
    ['indexRemove', () => store.indexRemove('i', 'm')],
    ['indexMembers', () => store.indexMembers('i')],
    ['publish', () => store.publish('ch', 'm')],
    ['ping', () => store.ping()],
  ];
  return Promise.all(
    calls.map(async ([name, call]) => {
      const err = await rejectionOf(call());
      return { name, err, ms: Date.now() - start };
    }),
  );
}

const sorted = (xs: readonly string[]): string[] => [...xs].sort();

export function storeContract(t: Test, h: StoreHarness): void {
  t.test('get, set, overwrite, delete', async (t) => {
    const { store } = await h.open(t);
    t.equal(await store.get('a'), null, 'absent key reads as null');
    await store.set('a', 'one');
    t.equal(await store.get('a'), 'one');
    await store.set('a', 'two');
    t.equal(await store.get('a'), 'two', 'set overwrites');
    await store.set('b', '');
    t.equal(await store.get('b'), '', 'empty string is a value, not absence');
    await store.set('ünï:cödé', 'välue ✓');
    t.equal(await store.get('ünï:cödé'), 'välue ✓', 'unicode keys and values round-trip');
    await store.delete('a');
    t.equal(await store.get('a'), null, 'deleted');
    await store.delete('never-there');
  });

  t.test('a value with a TTL expires, and not before its TTL', async (t) => {
    const { store } = await h.open(t);
    const ttl = 150;
    const start = Date.now();
    await store.set('short', 'v', ttl);
    const early = await store.get('short');
    if (Date.now() - start < ttl - 50) t.equal(early, 'v', 'present before expiry');
    let goneAt = 0;
    t.ok(
      await waitFor(async () => {
        if ((await store.get('short')) !== null) return false;
        goneAt = Date.now();
        return true;
      }),
      'expires',
    );
    t.ok(goneAt - start >= ttl - 5, `gone after its TTL (${goneAt - start} ms >= ${ttl} ms)`);
    t.equal(await store.ttl('short'), -2, 'an expired key is absent for ttl()');

    await store.set('k', 'v', 60_000);
    await store.set('k', 'w');
    t.equal(await store.ttl('k'), -1, 'set without TTL clears the previous TTL');

    await store.set('zero', 'v', 0);
    t.ok(await waitFor(async () => (await store.get('zero')) === null), 'a TTL of 0 expires at once');
    await store.set('inf', 'v', Infinity);
    t.equal(await store.ttl('inf'), -1, 'an infinite TTL means no expiry');
  });

  t.test('ttl() reports remaining ms, -1 without expiry, -2 when absent', async (t) => {
    const { store } = await h.open(t);
    t.equal(await store.ttl('nothing'), -2);
    await store.set('forever', 'v');
    t.equal(await store.ttl('forever'), -1);
    await store.set('ten', 'v', 10_000);
    const left = await store.ttl('ten');
    t.ok(left > 8_000 && left <= 10_000, `remaining ${left} ms within (8000, 10000]`);
  });

  t.test('setIfAbsent sets once; an expired value counts as absent', async (t) => {
    const { store } = await h.open(t);
    t.equal(await store.setIfAbsent('once', 'first', 60_000), true);
    t.equal(await store.setIfAbsent('once', 'second', 60_000), false);
    t.equal(await store.get('once'), 'first', 'the loser does not overwrite');
    const left = await store.ttl('once');
    t.ok(left > 0 && left <= 60_000, 'the winner set the TTL');
    await store.delete('once');
    t.equal(await store.setIfAbsent('once', 'third'), true, 'free again after delete');
    t.equal(await store.ttl('once'), -1, 'no TTL given: no expiry');

    t.equal(await store.setIfAbsent('brief', 'a', 100), true);
    t.ok(await waitFor(() => store.setIfAbsent('brief', 'b', 100)), 'claimable again after expiry');
    t.equal(await store.get('brief'), 'b');
  });

  t.test('setIfAbsent has exactly one winner among 50 concurrent calls', async (t) => {
    const { store, peer } = await h.open(t);
    const other = peer ? await peer() : store;
    const results = await Promise.all(
      Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).setIfAbsent('race', `v${i}`, 60_000)),
    );
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    t.equal(winners.length, 1, 'one winner');
    t.equal(await store.get('race'), `v${winners[0]}`, "the stored value is the winner's");
  });

  t.test('compareAndSet writes only over the expected value, one winner among concurrent calls', async (t) => {
    const { store, peer } = await h.open(t);
    const other = peer ? await peer() : store;
    t.equal(await store.compareAndSet('cas', 'x', 'y', 60_000), false, 'absent is not "x"');
    t.equal(await store.compareAndSet('cas', null, '1', 60_000), true, 'absent expected: written');
    t.equal(await store.compareAndSet('cas', null, '2', 60_000), false, 'no longer absent');
    t.equal(await store.get('cas'), '1');
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => (i % 2 === 0 ? store : other).compareAndSet('cas', '1', `v${i}`, 60_000)));
    const winners = results.flatMap((won, i) => (won ? [i] : []));
    t.equal(winners.length, 1, 'one winner');
    t.equal(await store.get('cas'), `v${winners[0]}`);
    await store.set('brief-cas', 'a', 50);
    t.ok(await waitFor(async () => (await store.get('brief-cas')) === null), 'expired');
    t.equal(await store.compareAndSet('brief-cas', null, 'b'), true, 'an expired value counts as absent');
  });

  t.test('take reads and deletes atomically', async (t) => {
    const { store, peer } = await h.open(t);
    await store.set('code', 'secret', 60_000);
    t.equal(await store.take('code'), 'secret');
    t.equal(await store.take('code'), null, 'second take finds nothing');
    t.equal(await store.get('code'), null);
    t.equal(await store.take('absent'), null);

    await store.set('brief', 'v', 50);
    t.ok(await waitFor(async () => (await store.get('brief')) === null), 'expires');
    t.equal(await store.take('brief'), null, 'an expired value cannot be taken');

    const other = peer ? await peer() : store;
    await store.set('single-use', 'token', 60_000);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).take('single-use')));
    t.same(
      results.filter((r) => r !== null),
      ['token'],
      'exactly one of 50 concurrent takes gets the value',
    );
  });

  t.test('incr counts atomically', async (t) => {
    const { store, peer } = await h.open(t);
    t.equal(await store.incr('n', 60_000), 1, 'starts at 1');
    t.equal(await store.incr('n', 60_000), 2);
    t.equal(await store.incr('n', 60_000, 5), 7, 'by');
    t.equal(await store.get('n'), '7', 'readable as a decimal string');

    const other = peer ? await peer() : store;
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 === 0 ? store : other).incr('race', 60_000)));
    t.same(
      [...results].sort((a, b) => a - b),
      Array.from({ length: 50 }, (_, i) => i + 1),
      '50 concurrent increments return 1..50, each once',
    );
    t.equal(await store.get('race'), '50');
  });

  t.test('incr keeps the TTL set by the first increment (fixed window)', async (t) => {
    const { store } = await h.open(t);
    await store.incr('w', 10_000);
    await store.incr('w', 60_000);
    await store.incr('w', 60_000);
    const left = await store.ttl('w');
    t.ok(left > 0 && left <= 10_000, `later increments do not extend the window (${left} ms)`);

    // Keep incrementing a short window: it must still expire and restart at 1.
    const ttl = 200;
    const start = Date.now();
    t.equal(await store.incr('lockout', ttl), 1);
    let restartedAt = 0;
    const restarted = await waitFor(async () => {
      if ((await store.incr('lockout', ttl)) !== 1) return false;
      restartedAt = Date.now();
      return true;
    }, 3000, 20);
    t.ok(restarted, 'the window expires although incremented throughout');
    t.ok(restartedAt - start >= ttl - 5, `not before the window's TTL (${restartedAt - start} ms)`);

    t.equal(await store.incr('unbounded', Infinity), 1);
    t.equal(await store.ttl('unbounded'), -1, 'an infinite window never expires');

    await store.set('plain', '5');
    t.equal(await store.incr('plain', 10_000), 6, 'increments an existing numeric value');
    const plainLeft = await store.ttl('plain');
    t.ok(plainLeft > 0 && plainLeft <= 10_000, `and gives a key without TTL the window TTL (${plainLeft} ms)`);
  });

  t.test('indexes hold members with per-member TTL', async (t) => {
    const { store } = await h.open(t);
    t.same(await store.indexMembers('none'), [], 'absent index is empty');

    await store.indexAdd('user:alice', 'a');
    await store.indexAdd('user:alice', 'b', 60_000);
    await store.indexAdd('user:alice', 'a');
    t.same(sorted(await store.indexMembers('user:alice')), ['a', 'b'], 'no duplicates');
    await store.indexAdd('user:bob', 'x');
    t.same(await store.indexMembers('user:bob'), ['x'], 'indexes are separate');

    await store.indexAdd('user:alice', 'brief', 100);
    await store.indexAdd('user:alice', 'pinned', 100);
    await store.indexAdd('user:alice', 'pinned'); // re-added without TTL: kept for good
    t.ok(await waitFor(async () => !(await store.indexMembers('user:alice')).includes('brief')), 'a member expires with its own TTL');
    t.same(sorted(await store.indexMembers('user:alice')), ['a', 'b', 'pinned'], 'the others stay');

    await store.indexRemove('user:alice', 'b');
    await store.indexRemove('user:alice', 'not-a-member');
    t.same(sorted(await store.indexMembers('user:alice')), ['a', 'pinned'], 'removed');

    await store.indexAdd('gone', 'only', 60);
    t.ok(await waitFor(async () => (await store.indexMembers('gone')).length === 0), 'an index whose members all expired is empty');
    await store.indexAdd('gone', 'again');
    t.same(await store.indexMembers('gone'), ['again'], 'and can be used again');

    await store.set('shared-name', 'value');
    await store.indexAdd('shared-name', 'member');
    t.equal(await store.get('shared-name'), 'value', 'index names do not collide with keys');
    t.same(await store.indexMembers('shared-name'), ['member']);
  });

  t.test('publish reaches every local subscriber once; unsubscribe stops it', async (t) => {
    const { store, peer } = await h.open(t);
    const got1: string[] = [];
    const got2: string[] = [];
    const gotOther: string[] = [];
    const off1 = store.subscribe('inv', (m) => got1.push(m));
    store.subscribe('inv', (m) => got2.push(m));
    store.subscribe('inv', () => {
      throw new Error('a failing handler');
    });
    store.subscribe('other', (m) => gotOther.push(m));

    await store.publish('inv', 'm1');
    t.ok(await waitFor(() => got1.length > 0 && got2.length > 0, 1000), 'delivered to this instance within 1 s');
    off1();
    off1(); // idempotent
    await store.publish('inv', 'm2');
    t.ok(await waitFor(() => got2.includes('m2'), 1000));

    if (peer) {
      // Anything this instance echoes back arrives before a later message from the peer.
      const p = await peer();
      t.ok(
        await waitFor(async () => {
          await p.publish('inv', 'marker');
          return waitFor(() => got2.includes('marker'), 200);
        }),
        'peer marker arrives',
      );
    }
    t.same(got1, ['m1'], 'unsubscribed handler got only the first message, once');
    t.same(
      got2.filter((m) => m !== 'marker'),
      ['m1', 'm2'],
      'each message once, in order, despite a throwing handler',
    );
    t.same(gotOther, [], 'other channels hear nothing');
  });

  t.test('a store that is closed fails closed', async (t) => {
    const { store } = await h.open(t);
    await store.set('k', 'v');
    await store.close();
    for (const { name, err } of await callEveryMethod(store)) {
      t.ok(err instanceof StoreUnavailableError, `${name} rejects with StoreUnavailableError`);
    }
    await store.close(); // idempotent
  });

  t.test('instances on the same state see each other', async (t) => {
    const { store: a, peer } = await h.open(t);
    if (!peer) {
      t.pass('this driver has no shared state between instances');
      return;
    }
    const b = await peer();
    await a.set('shared', 'from-a', 60_000);
    t.equal(await b.get('shared'), 'from-a', 'a value written by one is read by the other');
    t.equal(await b.take('shared'), 'from-a');
    t.equal(await a.get('shared'), null, 'taken for both');
    await a.indexAdd('idx', 'm');
    t.same(await b.indexMembers('idx'), ['m']);

    const atA: string[] = [];
    const atB: string[] = [];
    a.subscribe('inv', (m) => atA.push(m));
    b.subscribe('inv', (m) => atB.push(m));
    // Subscriptions may take a moment to become active (redis); probe until one gets through.
    let probe = 0;
    t.ok(
      await waitFor(async () => {
        await a.publish('inv', `probe${probe++}`);
        return waitFor(() => atB.some((m) => m.startsWith('probe')), 300);
      }, 5000, 0),
      'subscription active',
    );

    const sentAt = Date.now();
    await a.publish('inv', 'revoke:123');
    t.ok(await waitFor(() => atB.includes('revoke:123'), 1000, 5), `the other instance hears a publish within 1 s (${Date.now() - sentAt} ms)`);
    t.ok(atA.includes('revoke:123'), 'the publisher hears its own publish at once');

    await b.publish('inv', 'marker');
    t.ok(await waitFor(() => atA.includes('marker'), 1000, 5), 'and the other way round');
    t.equal(atA.filter((m) => m === 'revoke:123').length, 1, 'the publisher gets its own message exactly once');
    t.equal(atB.filter((m) => m === 'revoke:123').length, 1, 'the other instance gets it exactly once');
  });
}
