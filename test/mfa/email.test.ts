// Email codes through a real SMTP server (smtp-server on 127.0.0.1, port 0; THREATS 57, 58): the
// mailed code works once and never appears in a response or log line, 5 wrong tries burn it, a
// new send replaces the old code, sends are rate-limited, the answer is the same with or without
// an address, and SMTP down is a clear 503 that breaks nothing else.
import t from 'tap';
import { SMTPServer } from 'smtp-server';
import { waitFor } from '../helpers/gateway.js';
import { MfaKeys } from '../../src/mfa/sealing.js';
import { call, cookieValue, enrolTotp, json, login, MFA_SECRET, passwordSession, startMfaGateway } from './_mfa.js';

interface Mail { to: string[]; text: string }

async function startSmtp(t: Tap): Promise<{ port: number; mails: Mail[] }> {
  const mails: Mail[] = [];
  const server = new SMTPServer({
    secure: false,
    authOptional: true,
    disabledCommands: ['STARTTLS', 'AUTH'],
    logger: false,
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on('data', (c: Buffer) => chunks.push(c));
      stream.on('end', () => {
        mails.push({ to: session.envelope.rcptTo.map((r) => r.address), text: Buffer.concat(chunks).toString('utf8') });
        cb();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  return { port: (server.server.address() as { port: number }).port, mails };
}
type Tap = { teardown(fn: () => unknown): void };

const codeIn = (mail: Mail): string => /sign-in code is ([0-9]{6})/.exec(mail.text)![1]!;

t.test('a mailed code completes the second step once; never in a response', async (t) => {
  const smtp = await startSmtp(t);
  const { gw } = await startMfaGateway(t, { mfa: { email: { smtp: `smtp://127.0.0.1:${smtp.port}`, from: 'no-reply@example.test', codeTtl: '5m', sendCooldown: '1s' } }, login: { lockout: { maxFailures: 20 } } });
  const pw = await login(gw.url, 'erin');
  t.same(pw.json(), { mfaRequired: true, methods: ['email', 'enroll'] });
  const pending = cookieValue(pw)!;
  const sent = await call(`${gw.url}/.auth/mfa/email/send`, json(pending, {}));
  t.equal(sent.status, 202);
  t.same(sent.json(), { sent: true });
  t.ok(await waitFor(() => smtp.mails.length === 1), 'the mail arrived');
  t.same(smtp.mails[0]!.to, ['erin@example.test']);
  const code = codeIn(smtp.mails[0]!);
  t.notOk(sent.body.includes(code), 'the response does not contain the code');

  const again = await call(`${gw.url}/.auth/mfa/email/send`, json(pending, {}));
  t.equal(again.status, 429, 'send cooldown per user');
  t.ok(Number(again.headers['retry-after']) >= 1);

  t.equal((await call(`${gw.url}/.auth/mfa/email/verify`, json(pending, { code: code === '111111' ? '222222' : '111111' }))).status, 401);
  const ok = await call(`${gw.url}/.auth/mfa/email/verify`, json(pending, { code }));
  t.equal(ok.status, 200);
  t.match(ok.json(), { user: { user: 'erin', mfa: true } });
  t.notOk(ok.body.includes(code));
  const second = cookieValue(await login(gw.url, 'erin'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/email/verify`, json(second, { code }))).status, 401, 'single use');

  // A resend replaces the live code; 5 wrong tries burn the new one. (Polling the cooldowns in
  // the store, not the endpoint: every send counts against the client's own limit. Both of them:
  // the address's is set just after the user's, so it can outlive it by a few milliseconds.)
  const store = gw.current().ctx.store;
  const addressCooldown = `mfa:email:cooldown:addr:${new MfaKeys(MFA_SECRET).codeHash('address', 'erin@example.test')}`;
  const cooledDown = () => waitFor(async () => (await store.ttl('mfa:email:cooldown:user:erin')) === -2 && (await store.ttl(addressCooldown)) === -2, 5000, 50);
  t.ok(await cooledDown());
  t.equal((await call(`${gw.url}/.auth/mfa/email/send`, json(second, {}))).status, 202, 'after the cooldown');
  t.ok((await store.ttl(addressCooldown)) > 0, 'the address cooldown waited for is the one a send sets');
  t.ok(await waitFor(() => smtp.mails.length === 2));
  const old = codeIn(smtp.mails[1]!);
  t.ok(await cooledDown());
  t.equal((await call(`${gw.url}/.auth/mfa/email/send`, json(second, {}))).status, 202);
  t.ok(await waitFor(() => smtp.mails.length === 3));
  const newest = codeIn(smtp.mails[2]!);
  if (old !== newest) t.equal((await call(`${gw.url}/.auth/mfa/email/verify`, json(second, { code: old }))).status, 401, 'an older code after a resend');
  for (let i = 0; i < 5; i++) await call(`${gw.url}/.auth/mfa/email/verify`, json(second, { code: newest === '000000' ? '000001' : '000000' }));
  t.equal((await call(`${gw.url}/.auth/mfa/email/verify`, json(second, { code: newest }))).status, 401, 'burnt after 5 wrong tries');

  const logs = gw.rawLogs.join('\n');
  for (const c of [code, old, newest]) t.notOk(logs.includes(`"${c}"`) || logs.includes(` ${c}`), 'no email code in the logs');
});

t.test('the same answer without an address; per-client send limit', async (t) => {
  const smtp = await startSmtp(t);
  const { gw } = await startMfaGateway(t, { mfa: { email: { smtp: `smtp://127.0.0.1:${smtp.port}`, from: 'no-reply@example.test', sendCooldown: '1s' } } });
  const withAddress = await call(`${gw.url}/.auth/mfa/email/send`, json(cookieValue(await login(gw.url, 'erin'))!, {}));
  const without = await call(`${gw.url}/.auth/mfa/email/send`, json(cookieValue(await login(gw.url, 'nomail'))!, {}));
  t.equal(withAddress.status, without.status);
  t.equal(withAddress.body, without.body);
  t.ok(await waitFor(() => smtp.mails.length === 1));
  await new Promise((r) => setTimeout(r, 50));
  t.equal(smtp.mails.length, 1, 'only the user with an address got a mail');
});

t.test('SMTP down: a clear 503, and everything else keeps working', async (t) => {
  // Port 1 on loopback: nothing listens, the connection is refused at once.
  const { gw } = await startMfaGateway(t, { mfa: { email: { smtp: 'smtp://127.0.0.1:1', from: 'no-reply@example.test' } } });
  const pending = cookieValue(await login(gw.url, 'erin'))!;
  const down = await call(`${gw.url}/.auth/mfa/email/send`, json(pending, {}));
  t.equal(down.status, 503);
  t.match(down.json(), { code: 'service_unavailable' });
  t.match(down.headers['content-type'], /application\/problem\+json/);
  t.equal((await call(`${gw.url}/.auth/mfa/email/send`, json(pending, {}))).status, 503, 'no cooldown from a send that failed');
  const alice = await login(gw.url, 'alice');
  t.equal(alice.status, 200, 'password sign-in still works');
  t.equal((await call(`${gw.adminUrl}/healthz`)).status, 200);
  t.notOk(gw.rawLogs.some((l) => l.includes('127.0.0.1:1') && l.includes('pass')), 'no SMTP URL credentials logged');
});

t.test('using a recovery code mails the user a notice', async (t) => {
  const smtp = await startSmtp(t);
  const { gw } = await startMfaGateway(t, { mfa: { email: { smtp: `smtp://127.0.0.1:${smtp.port}`, from: 'no-reply@example.test' } } });
  const { recoveryCodes } = await enrolTotp(gw.url, await passwordSession(gw.url, 'bob'));
  const pending = cookieValue(await login(gw.url, 'bob'))!;
  t.equal((await call(`${gw.url}/.auth/mfa/verify`, json(pending, { code: recoveryCodes[0] }))).status, 200);
  t.ok(await waitFor(() => smtp.mails.length === 1), 'a notice was mailed');
  t.same(smtp.mails[0]!.to, ['bob@example.test']);
  t.match(smtp.mails[0]!.text, /recovery code was just used/);
  t.match(smtp.mails[0]!.text.replace(/=\r?\n/g, ''), /9 unused codes remain/);
  t.notOk(smtp.mails[0]!.text.includes(recoveryCodes[0]!), 'the notice does not repeat the code');
});
