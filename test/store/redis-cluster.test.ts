// The store contract against a real three-node Redis Cluster (SPEC 8: store.redis.cluster),
// started by this test on free ports: Lua scripts, pub/sub between instances and expiry all
// hold when keys spread over the nodes' hash slots; and two gateways share sessions through it.
import { randomUUID } from 'node:crypto';
import t from 'tap';
import { Redis } from 'ioredis';
import { createStore } from '../../src/store/index.js';
import { makeTempDir, startTestEcho, startTestGateway, waitFor as gatewayWaitFor } from '../helpers/gateway.js';
import { call, me, signIn, usersFile } from '../sessions/_browser.js';
import { redisCommand, startRedisCluster } from '../helpers/redis.js';
import { captureLog, storeContract, waitFor } from './contract.js';

const dir = makeTempDir(t, 'authgate-cluster-');
const nodes = await startRedisCluster(t, dir);
const seeds = nodes.map((n) => `127.0.0.1:${n.port}`);

async function openClusterStore(keyPrefix: string) {
  const store = await createStore({ driver: 'redis', redis: { cluster: [seeds[0]!], keyPrefix } }, { configDir: dir, log: captureLog() });
  t.teardown(() => store.close());
  return store;
}

t.test('redis cluster store contract', async (t) => {
  storeContract(t, {
    async open() {
      // The cluster is thrown away at the end; a fresh prefix keeps the subtests apart.
      const prefix = `test:${randomUUID()}:`;
      return { store: await openClusterStore(prefix), peer: () => openClusterStore(prefix) };
    },
  });
});

t.test('keys land on every node, and a message published through one node reaches a subscriber on another', async (t) => {
  const prefix = `spread:${randomUUID()}:`;
  const a = await openClusterStore(prefix);
  const b = await openClusterStore(prefix);
  for (let i = 0; i < 60; i++) await a.set(`k${i}`, String(i));
  for (let i = 0; i < 60; i++) await a.indexAdd(`idx${i}`, 'm', 60_000);
  const perNode = await Promise.all(nodes.map(async (n) => Number(await redisCommand(n.port, 'DBSIZE'))));
  t.ok(perNode.every((count) => count > 0), `keys spread over all three nodes (${perNode.join(', ')})`);
  t.equal(await b.get('k42'), '42');
  t.same(await b.indexMembers('idx17'), ['m']);
  t.equal(await b.incr('counter', 60_000), 1);
  t.equal(await a.incr('counter', 60_000, 4), 5, 'the Lua counter is one key, one slot');

  const got: string[] = [];
  b.subscribe('inv', (m) => got.push(m));
  t.ok(
    await waitFor(async () => {
      await a.publish('inv', 'ping');
      return waitFor(() => got.includes('ping'), 200);
    }, 10_000, 0),
    'pub/sub works across instances in the cluster',
  );
  // A plain PUBLISH on any node reaches subscribers connected to any other node.
  for (const n of nodes) {
    const raw = new Redis(n.port, '127.0.0.1');
    t.teardown(() => raw.disconnect());
    await raw.publish(`${prefix}inv`, `via-${n.port}`);
  }
  t.ok(await waitFor(() => nodes.every((n) => got.includes(`via-${n.port}`)), 3000), 'messages published on each node arrive');
});

t.test('two gateways on the cluster: a session from A works on B; a logout on A is refused by B within 1 s', async (t) => {
  const echo = await startTestEcho(t);
  const config = {
    users: { file: './users.yaml' },
    store: { driver: 'redis', redis: { cluster: seeds, keyPrefix: `gw:${randomUUID()}:` } },
    authenticators: { web: { type: 'session' } },
    routes: [{ name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web'] }],
  };
  const files = { 'users.yaml': await usersFile() };
  const a = await startTestGateway(t, config, { files, logLevel: 'warn' });
  const b = await startTestGateway(t, config, { files, logLevel: 'warn' });
  const cookie = await signIn(a.url);
  const onB = () => call(`${b.url}/app/x`, { headers: { cookie: `authgate_session=${cookie}` } });
  t.equal((await onB()).status, 200, 'made on A, accepted (and now cached) by B');
  t.equal((await call(`${a.url}/.auth/logout`, { method: 'POST', headers: { cookie: `authgate_session=${cookie}` } })).status, 204);
  const at = Date.now();
  t.ok(await gatewayWaitFor(async () => (await onB()).status === 401, 1000, 10), `B refuses it within 1 s (${Date.now() - at} ms)`);
  t.equal((await me(a.url, cookie)).status, 401);
});
