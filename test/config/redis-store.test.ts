// store.redis (SPEC 8): exactly one of url, sentinels (+ name) or cluster; the README's Sentinel
// example loads; the demo config's listen host comes from AUTHGATE_LISTEN_HOST.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import { parse, stringify } from 'yaml';
import { ConfigError, loadConfig } from '../../src/config/load.js';

const ROUTE = 'routes:\n  - { name: r, match: { path: /x }, upstream: http://127.0.0.1:1, auth: anonymous }\n';

async function errorsOf(t: Test, store: string, files: Record<string, string> = {}): Promise<string[]> {
  const dir = t.testdir({ 'authgate.yaml': `store:\n${store}\n${ROUTE}`, ...files });
  const file = path.join(dir, 'authgate.yaml');
  try {
    await loadConfig(file, {});
    return [];
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    return err.errors.map((line) => line.slice(file.length + 1));
  }
}

t.test('one way to reach Redis', async (t) => {
  t.same(await errorsOf(t, '  driver: redis\n  redis: { url: "redis://127.0.0.1:6379" }'), []);
  t.same(await errorsOf(t, '  driver: redis\n  redis: { sentinels: ["127.0.0.1:26379", "h2:26379"], name: main, password: pw }'), []);
  t.same(await errorsOf(t, '  driver: redis\n  redis: { cluster: ["127.0.0.1:7000"], password: { file: pw.txt } }', { 'pw.txt': 'secret\n' }), []);
  t.match(await errorsOf(t, '  driver: redis\n  redis: { keyPrefix: "a:" }'), [/store\.redis: needs exactly one of url, sentinels \(with name\) or cluster/]);
  t.match(await errorsOf(t, '  driver: redis\n  redis: { url: "redis://h", cluster: ["h:1"] }'), [/needs exactly one of/]);
  t.match(await errorsOf(t, '  driver: redis\n  redis: { sentinels: ["h:26379"] }'), [/store\.redis\.name: is required with sentinels/]);
  t.match(await errorsOf(t, '  driver: redis\n  redis: { cluster: ["h:1"], name: x }'), [/store\.redis\.name: is only used with sentinels/]);
  t.match(await errorsOf(t, '  driver: redis\n  redis: { url: "redis://h", password: x }'), [/store\.redis\.password: goes in the url/]);
  const bad = await errorsOf(t, '  driver: redis\n  redis: { cluster: ["no-port", "h:"] }');
  t.equal(bad.length, 2, `host:port is checked: ${bad.join(' | ')}`);
  t.same(await errorsOf(t, '  driver: redis\n  redis: { cluster: [] }').then((e) => e.length > 0), true, 'an empty node list is refused');
});

t.test("the README's Sentinel example is a valid store section", async (t) => {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');
  const block = /```yaml\n(store:\n {2}driver: redis\n[\s\S]*?)```/.exec(readme)?.[1];
  t.ok(block, 'README has the example');
  const store = (parse(block!) as { store: { redis: Record<string, unknown> } }).store;
  store.redis.password = { file: 'pw.txt' }; // the README reads it from /run/secrets
  const dir = t.testdir({ 'authgate.yaml': stringify({ store }) + ROUTE, 'pw.txt': 'pw\n' });
  const { config } = await loadConfig(path.join(dir, 'authgate.yaml'), {});
  t.same(config.store?.redis?.sentinels, ['10.0.0.11:26379', '10.0.0.12:26379', '10.0.0.13:26379']);
  t.equal(config.store?.redis?.name, 'authgate');
  t.equal(config.store?.redis?.password, 'pw', 'the password file is read');
});

t.test('the demo config takes its listen host and ports from the environment', async (t) => {
  const file = new URL('../../config/authgate.yaml', import.meta.url).pathname;
  const defaults = await loadConfig(file, {});
  t.same(defaults.config.server?.listen, { host: '127.0.0.1', port: 8080 });
  t.same(defaults.config.server?.admin, { host: '127.0.0.1', port: 9090 });
  const docker = await loadConfig(file, { AUTHGATE_LISTEN_HOST: '0.0.0.0', AUTHGATE_LISTEN_PORT: '18080', AUTHGATE_ADMIN_PORT: '19090' });
  t.same(docker.config.server?.listen, { host: '0.0.0.0', port: 18080 }, 'the public listener follows AUTHGATE_LISTEN_HOST');
  t.same(docker.config.server?.admin, { host: '127.0.0.1', port: 19090 }, 'the admin listener stays on loopback');
});
