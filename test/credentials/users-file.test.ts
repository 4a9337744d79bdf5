import t from 'tap';
import { mkdtempSync, rmSync, writeFileSync, renameSync, unlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { UsersFileDirectory, parseUsersFile, UsersFileError } from '../../src/credentials/users-file.js';

const PBKDF2 = 'pbkdf2_sha256$260000$SIwiFU0XjowyA86Ahp8RDz$/6QMKirZVvcNr0AncYCs4+Rx0rYnE+u4FHgI0ummOoo=';
const ARGON = '$argon2id$v=19$m=19456,t=2,p=1$Ngu9ASAtm1fXPd4i/T0pgQ$OdMuA7GY1+YdsURFbYrghI2EV+eesdXDvhseJwLn3iY';

function memLog() {
  const lines: { level: string; obj: object; msg?: string }[] = [];
  const at = (level: string) => (obj: object, msg?: string) => void lines.push({ level, obj, msg });
  return { lines, log: { info: at('info'), warn: at('warn'), error: at('error') } };
}

async function until(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 3000): Promise<number> {
  const start = Date.now();
  while (!(await cond())) {
    if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - start;
}

const VALID = `
users:
  alice:
    email: Alice@Example.com
    password: "${PBKDF2}"
    groups: [admin, staff]
    mfa: { required: true }
  bob:
    password: "${ARGON}"
  carol:
    email: carol@example.com
    disabled: true
`;

function tmpFile(t: { teardown(fn: () => void): void }, text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'authgate-users-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'users.yaml');
  writeFileSync(file, text);
  return file;
}

t.test('parses users and looks them up by username or email', async (t) => {
  const { log } = memLog();
  const dir = await UsersFileDirectory.open({ path: tmpFile(t, VALID), log, watch: false });
  t.teardown(() => dir.close());
  const alice = await dir.lookup('alice');
  t.ok(alice);
  t.equal(alice!.username, 'alice');
  t.equal(alice!.email, 'Alice@Example.com');
  t.same(alice!.groups, ['admin', 'staff']);
  t.equal(alice!.mfaRequired, true);
  t.equal(alice!.disabled, false);
  t.equal(alice!.passwordHash, PBKDF2);
  t.equal((await dir.lookup('alice@example.com'))?.username, 'alice', 'email is case-insensitive');
  t.equal((await dir.lookup('ALICE@EXAMPLE.COM'))?.username, 'alice');
  t.equal(await dir.lookup('Alice'), undefined, 'usernames are exact');
  t.equal((await dir.get('carol'))?.disabled, true);
  t.equal((await dir.get('carol'))?.passwordHash, undefined);
  t.equal(await dir.get('alice@example.com'), undefined, 'get is by username only');
  t.equal((await dir.get('bob'))?.groups.length, 0);
  t.not(alice!.version, (await dir.get('bob'))!.version);
});

t.test('login.identifiers limits what a login name may be', async (t) => {
  const { log } = memLog();
  const path = tmpFile(t, VALID);
  const byName = await UsersFileDirectory.open({ path, log, watch: false, identifiers: ['username'] });
  const byEmail = await UsersFileDirectory.open({ path, log, watch: false, identifiers: ['email'] });
  t.teardown(() => Promise.all([byName.close(), byEmail.close()]));
  t.equal((await byName.lookup('alice'))?.username, 'alice');
  t.equal(await byName.lookup('alice@example.com'), undefined);
  t.equal(await byEmail.lookup('alice'), undefined);
  t.equal((await byEmail.lookup('alice@example.com'))?.username, 'alice');
});

t.test('validation errors are precise and never quote a hash', async (t) => {
  const cases: [string, RegExp][] = [
    [`users:\n  alice:\n    pasword: "${PBKDF2}"\n`, /f\.yaml:3:\d+: users\.alice\.pasword: Unexpected property/],
    [`users:\n  alice:\n    password: "plain-text-password"\n`, /f\.yaml:3:15: users\.alice\.password: not a supported password hash/],
    [`users:\n  alice:\n    password: "pbkdf2_sha256$99999999$salt$AAAA"\n`, /users\.alice\.password: not a supported/],
    [`users:\n  alice:\n    groups: ["a,b"]\n`, /users\.alice\.groups\.0/],
    [`users:\n  "al:ice":\n    groups: []\n`, /users\.al:ice: a username/],
    [`users:\n  "al\\nice": {}\n`, /a username/],
    [`users:\n  a:\n    email: x@example.com\n  b:\n    email: X@example.com\n`, /users\.b\.email: the same email as user "a"/],
    [`users:\n  "x@example.com": {}\n  b:\n    email: x@example.com\n`, /users\.b\.email: is also the username of "x@example.com"/],
    [`users:\n  Alice: {}\n  alice: {}\n`, /differs from user "Alice" only by case/],
    [`users:\n  alice: {}\n  alice: {}\n`, /DUPLICATE_KEY/],
    [`users:\n  alice:\n    disabled: "yes"\n`, /users\.alice\.disabled/],
    [`users: [1, 2]\n`, /users/],
    [`nope: 1\n`, /nope|users/],
    [``, /expected a map/],
    [`users:\n  alice: { password: "${PBKDF2}" \n`, /f\.yaml:\d+:\d+: /],
  ];
  for (const [text, re] of cases) {
    try {
      parseUsersFile(text, 'f.yaml');
      t.fail(`accepted: ${text}`);
    } catch (err) {
      t.type(err, UsersFileError);
      const message = (err as UsersFileError).errors.join('\n');
      t.match(message, re, text);
      t.notMatch(message, /plain-text-password|SIwiFU0Xjowy|Ngu9ASAtm1/, 'no hash or password in the error');
    }
  }
  t.same([...parseUsersFile('users:\n', 'f.yaml').byName.keys()], [], 'an empty users map is fine');
});

t.test('watching: an edit applies within 1 s and notifies once per changed user', async (t) => {
  const { log } = memLog();
  const path = tmpFile(t, VALID);
  const dir = await UsersFileDirectory.open({ path, log });
  t.teardown(() => dir.close());
  const changes: (string | undefined)[] = [];
  dir.onChange((u) => changes.push(u));
  const before = (await dir.get('alice'))!.version;
  const bobBefore = (await dir.get('bob'))!.version;
  writeFileSync(path, VALID.replace('groups: [admin, staff]', 'groups: [admin, staff]\n    disabled: true'));
  const took = await until(async () => (await dir.get('alice'))?.disabled === true, 'alice disabled');
  t.ok(took < 1000, `applied after ${took} ms`);
  t.not((await dir.get('alice'))!.version, before, 'version changed');
  t.equal((await dir.get('bob'))!.version, bobBefore, 'bob untouched');
  await until(() => changes.length > 0, 'change event');
  t.same(changes, ['alice']);

  // Editors save by writing a new file and renaming it over the old one.
  const tmp = path + '.tmp';
  writeFileSync(tmp, VALID.replace(`bob:\n    password: "${ARGON}"`, `bob:\n    password: "${PBKDF2}"`));
  renameSync(tmp, path);
  await until(async () => (await dir.get('bob'))?.passwordHash === PBKDF2, 'bob password changed');
  await until(() => changes.includes('bob'), 'bob change event');
  t.ok(changes.includes('alice'), 'alice changed back (re-enabled)');
  t.equal((await dir.get('alice'))?.disabled, false);
});

t.test('a broken edit is logged and the old users stay; a fixed edit applies', async (t) => {
  const { log, lines } = memLog();
  const path = tmpFile(t, VALID);
  const dir = await UsersFileDirectory.open({ path, log });
  t.teardown(() => dir.close());
  writeFileSync(path, VALID.replace('groups: [admin, staff]', 'groups: [admin, staff'));
  await until(() => lines.some((l) => l.level === 'error'), 'error logged');
  t.equal((await dir.get('alice'))?.groups.length, 2, 'previous users kept');
  t.notMatch(JSON.stringify(lines), /SIwiFU0Xjowy|Ngu9ASAtm1/, 'no hash in logs');
  const errorsLogged = lines.filter((l) => l.level === 'error').length;
  // The poll keeps seeing the same broken file: it is reported once, not every tick.
  await new Promise((r) => setTimeout(r, 1200));
  t.equal(lines.filter((l) => l.level === 'error').length, errorsLogged, 'reported once');
  writeFileSync(path, VALID.replace('groups: [admin, staff]', 'groups: [admin]'));
  await until(async () => (await dir.get('alice'))?.groups.length === 1, 'fixed file applied');

  // A deleted file keeps the users too.
  unlinkSync(path);
  await until(() => lines.some((l) => l.level === 'error' && /unreadable/.test(l.msg ?? '')), 'unreadable logged');
  t.ok(await dir.get('alice'));
  writeFileSync(path, VALID);
  await until(async () => (await dir.get('alice'))?.groups.length === 2, 'restored file applied');
});

t.test('reload() reports changed, added and removed users', async (t) => {
  const { log } = memLog();
  const path = tmpFile(t, VALID);
  const dir = await UsersFileDirectory.open({ path, log, watch: false });
  t.teardown(() => dir.close());
  t.same(await dir.reload(), [], 'nothing changed');
  writeFileSync(path, VALID.replace(/ {2}carol:[\s\S]*$/, '  dave: {}\n'));
  t.same((await dir.reload()).sort(), ['carol', 'dave']);
  t.equal(await dir.get('carol'), undefined);
  t.ok(await dir.get('dave'));
});

t.test('open refuses a bad file', async (t) => {
  const { log } = memLog();
  await t.rejects(UsersFileDirectory.open({ path: tmpFile(t, 'users:\n  a: { password: nope }\n'), log, watch: false }), UsersFileError);
  await t.rejects(UsersFileDirectory.open({ path: '/nonexistent/users.yaml', log, watch: false }));
});
