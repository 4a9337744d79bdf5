// Helpers for the MFA tests: a gateway with MFA users and routes, TOTP codes from otplib for a
// chosen moment, and the enrolment / login steps as a browser or API client performs them.
import { randomBytes } from 'node:crypto';
import { generate } from 'otplib';
import { stringify } from 'yaml';
import { startTestEcho, startTestGateway, type Teardown, type TestGateway } from '../helpers/gateway.js';
import { passwordHashes, PASSWORDS, call, cookieValue, type Answer } from '../sessions/_browser.js';

export { PASSWORDS, call, cookieValue };
export const MFA_SECRET = randomBytes(32).toString('base64url');

export async function mfaUsersFile(): Promise<string> {
  const h = await passwordHashes();
  return stringify({
    users: {
      alice: { email: 'alice@example.test', password: h.alice, groups: ['admin'] },
      bob: { email: 'bob@example.test', password: h.mallory, groups: ['admin'] },
      carol: { email: 'carol@example.test', password: h.alice, groups: [] },
      erin: { email: 'erin@example.test', password: h.mfa, mfa: { required: true } },
      nomail: { password: h.mfa, mfa: { required: true } },
    },
  });
}

/** Passwords by user in mfaUsersFile. */
export const PW: Record<string, string> = { alice: PASSWORDS.alice, bob: PASSWORDS.mallory, carol: PASSWORDS.alice, erin: PASSWORDS.mfa, nomail: PASSWORDS.mfa };

export interface MfaGateway {
  gw: TestGateway;
  echo: Awaited<ReturnType<typeof startTestEcho>>;
}

export async function startMfaGateway(t: Teardown, extra: Record<string, unknown> = {}, opts: { dir?: string } = {}): Promise<MfaGateway> {
  const echo = await startTestEcho(t);
  const { secrets, login, mfa, ...rest } = extra as { secrets?: Record<string, unknown>; login?: Record<string, unknown>; mfa?: Record<string, unknown> };
  const gw = await startTestGateway(
    t,
    {
      users: { file: './users.yaml' },
      secrets: { session: randomBytes(32).toString('base64url'), mfa: MFA_SECRET, ...(secrets ?? {}) },
      login: { lockout: { maxFailures: 4, window: '10m', duration: '15m' }, ...(login ?? {}) },
      mfa: { totp: { issuer: 'authgate-test', window: 1 }, recoveryCodes: 10, ...(mfa ?? {}) },
      authenticators: { web: { type: 'session' }, jwt: { type: 'jwt', issuer: 'self' } },
      routes: [
        { name: 'admin', match: { path: '/admin/**' }, upstream: echo.url, auth: ['web', 'jwt'], require: { mfa: true }, onUnauthenticated: 'login' },
        { name: 'app', match: { path: '/app/**' }, upstream: echo.url, auth: ['web', 'jwt'] },
      ],
      ...rest,
    },
    { files: { 'users.yaml': await mfaUsersFile() }, ...(opts.dir !== undefined ? { dir: opts.dir } : {}) },
  );
  return { gw, echo };
}

/** The TOTP code of `secret` at `epochSeconds` (default now). */
export function totp(secret: string, epochSeconds = Math.floor(Date.now() / 1000)): Promise<string> {
  return generate({ secret, epoch: epochSeconds });
}

/**
 * Waits (bounded) until the current 30 s step has at least `marginS` seconds left, so a code
 * generated now is still the current one when the gateway checks it on a loaded machine.
 */
export async function awayFromStepEdge(marginS = 6): Promise<void> {
  const left = 30 - (Math.floor(Date.now() / 1000) % 30);
  if (left >= marginS) return;
  await new Promise((r) => setTimeout(r, left * 1000 + 200));
}

export const json = (cookie: string | undefined, body: unknown, headers: Record<string, string> = {}) => ({
  method: 'POST',
  headers: { 'content-type': 'application/json', ...(cookie !== undefined ? { cookie: `authgate_session=${cookie}` } : {}), ...headers },
  body: JSON.stringify(body),
});

export async function login(base: string, username: string, password = PW[username]!): Promise<Answer> {
  return call(`${base}/.auth/login`, json(undefined, { username, password }));
}

/** Signs in with the password alone (a user without factors): the session cookie. */
export async function passwordSession(base: string, username: string): Promise<string> {
  const a = await login(base, username);
  const c = cookieValue(a);
  if (a.status !== 200 || c === undefined) throw new Error(`login failed: ${a.status} ${a.body}`);
  return c;
}

/** Enrols TOTP for a signed-in session; returns the secret, the recovery codes and the new cookie. */
export async function enrolTotp(base: string, cookie: string): Promise<{ secret: string; recoveryCodes: string[]; cookie: string; confirmCode: string }> {
  const enroll = await call(`${base}/.auth/mfa/totp/enroll`, json(cookie, {}));
  if (enroll.status !== 200) throw new Error(`enroll: ${enroll.status} ${enroll.body}`);
  const { secret } = enroll.json<{ secret: string }>();
  await awayFromStepEdge();
  const confirmCode = await totp(secret);
  const confirm = await call(`${base}/.auth/mfa/totp/confirm`, json(cookie, { code: confirmCode }));
  if (confirm.status !== 200) throw new Error(`confirm: ${confirm.status} ${confirm.body}`);
  return { secret, recoveryCodes: confirm.json<{ recoveryCodes: string[] }>().recoveryCodes, cookie: cookieValue(confirm)!, confirmCode };
}

/** A port that was free a moment ago (WebAuthn needs publicUrl http://localhost:<port> before start). */
export { freePort } from '../helpers/redis.js';

/** The JSON payload of a JWT (no verification: the tests read what the gateway issued). */
export function jwtPayload(token: string): Record<string, unknown> {
  return JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString('utf8')) as Record<string, unknown>;
}
