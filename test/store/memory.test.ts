import t from 'tap';
import { createStore } from '../../src/store/index.js';
import { MemoryStore } from '../../src/store/memory.js';
import { captureLog, storeContract } from './contract.js';

t.test('memory store contract', async (t) => {
  storeContract(t, {
    async open(t) {
      const store = new MemoryStore({ maxEntries: 1000, log: captureLog() });
      t.teardown(() => store.close());
      return { store };
    },
  });
});

t.test('memory store is bounded', async (t) => {
  const store = new MemoryStore({ maxEntries: 100 });
  t.teardown(() => store.close());
  for (let i = 0; i < 250; i++) {
    await store.set(`k${i}`, 'v');
    await store.indexAdd(`i${i}`, 'm');
  }
  let kept = 0;
  let indexesKept = 0;
  for (let i = 0; i < 250; i++) {
    if ((await store.get(`k${i}`)) !== null) kept++;
    if ((await store.indexMembers(`i${i}`)).length > 0) indexesKept++;
  }
  t.equal(kept, 100, 'at most maxEntries values');
  t.equal(indexesKept, 100, 'at most maxEntries indexes');
  t.equal(await store.get('k249'), 'v', 'the most recent survive');
  t.equal(await store.get('k0'), null, 'the least recently used go');

  for (let i = 0; i < 10_050; i++) await store.indexAdd('big', `m${i}`);
  const members = await store.indexMembers('big');
  t.equal(members.length, 10_000, 'members per index are bounded');
  t.notOk(members.includes('m0'), 'the oldest member went first');
  t.ok(members.includes('m10049'));
});

t.test('createStore memory driver warns that state is lost', async (t) => {
  const log = captureLog();
  const store = await createStore({ driver: 'memory' }, { configDir: '/nonexistent', log });
  t.teardown(() => store.close());
  t.equal(store.driver, 'memory');
  t.ok(log.lines.some((l) => l.level === 'warn' && l.msg === 'memory store: state is lost on restart'));
  await store.set('a', 'b');
  t.equal(await store.get('a'), 'b');
});
