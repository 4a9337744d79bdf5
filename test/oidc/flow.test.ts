// Flow state (src/oidc/flow.ts): single use, bound to the browser and the provider, expires after
// 10 minutes, and bounded per client address.
import t from 'tap';
import { FLOW_TTL_MS, newFlowCookie, startFlow, takeFlow } from '../../src/oidc/flow.js';
import { MemoryStore } from '../../src/store/memory.js';

t.test('single use, bound to browser and provider', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const browser = newFlowCookie();
  const started = await startFlow(store, 'corp', '/app', browser, '10.0.0.1');
  if (!started.ok) throw new Error('not started');
  const { state } = started.flow;
  t.same(await takeFlow(store, state, 'corp', newFlowCookie()), { ok: false, reason: 'foreign' }, 'another browser');
  t.same(await takeFlow(store, state, 'corp', browser), { ok: false, reason: 'unknown' }, 'spent by the foreign attempt');

  const again = await startFlow(store, 'corp', '/app', browser, '10.0.0.1');
  if (!again.ok) throw new Error('not started');
  t.same(await takeFlow(store, again.flow.state, 'partner', browser), { ok: false, reason: 'foreign' }, 'another provider');
  const third = await startFlow(store, 'corp', '/app', browser, '10.0.0.1');
  if (!third.ok) throw new Error('not started');
  const taken = await takeFlow(store, third.flow.state, 'corp', browser);
  t.ok(taken.ok);
  t.same(await takeFlow(store, third.flow.state, 'corp', browser), { ok: false, reason: 'unknown' }, 'single use');
  t.same(await takeFlow(store, null, 'corp', browser), { ok: false, reason: 'unknown' });
  t.same(await takeFlow(store, 'short', 'corp', browser), { ok: false, reason: 'unknown' });
});

t.test('expires after 10 minutes', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const browser = newFlowCookie();
  const realNow = Date.now;
  const started = await startFlow(store, 'corp', '/', browser, '10.0.0.2');
  if (!started.ok) throw new Error('not started');
  Date.now = () => realNow() + FLOW_TTL_MS + 1000;
  t.teardown(() => { Date.now = realNow; });
  t.same(await takeFlow(store, started.flow.state, 'corp', browser), { ok: false, reason: 'unknown' });
});

t.test('bounded per client address', async (t) => {
  const store = new MemoryStore();
  t.teardown(() => store.close());
  const browser = newFlowCookie();
  let refused = 0;
  for (let i = 0; i < 70; i++) if (!(await startFlow(store, 'corp', '/', browser, '10.0.0.3')).ok) refused++;
  t.equal(refused, 10, 'the 61st and later flows within the window are refused');
  t.ok((await startFlow(store, 'corp', '/', browser, '10.0.0.4')).ok, 'another address is not affected');
});
