// Helpers for the session integration tests: a users file, and a tiny cookie-aware client.
import { request } from 'undici';
import { stringify } from 'yaml';
import { hashPassword } from '../../src/credentials/passwords.js';

export const PASSWORDS = { alice: 'alice-correct-horse', mallory: 'mallory-battery-staple', mfa: 'mfa-user-password-1' } as const;

let hashes: Promise<Record<keyof typeof PASSWORDS, string>> | undefined;
export function passwordHashes(): Promise<Record<keyof typeof PASSWORDS, string>> {
  hashes ??= (async () => ({ alice: await hashPassword(PASSWORDS.alice), mallory: await hashPassword(PASSWORDS.mallory), mfa: await hashPassword(PASSWORDS.mfa) }))();
  return hashes;
}

export interface UserEntry { email?: string; password?: string; groups?: string[]; disabled?: boolean; mfa?: { required: boolean } }

export async function usersFile(overrides: Record<string, UserEntry | undefined> = {}): Promise<string> {
  const h = await passwordHashes();
  const users: Record<string, UserEntry | undefined> = {
    alice: { email: 'alice@example.test', password: h.alice, groups: ['admin', 'staff'] },
    mallory: { email: 'mallory@example.test', password: h.mallory, groups: [] },
    'mfa-user': { password: h.mfa, mfa: { required: true } },
    ...overrides,
  };
  for (const k of Object.keys(users)) if (users[k] === undefined) delete users[k];
  return stringify({ users });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
  setCookies: string[];
  json<T = Record<string, unknown>>(): T;
}

export async function call(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string } = {}): Promise<Answer> {
  const res = await request(url, { method: (opts.method ?? 'GET') as 'GET', headers: opts.headers, body: opts.body });
  const body = await res.body.text();
  const raw = res.headers['set-cookie'];
  const setCookies = raw === undefined ? [] : Array.isArray(raw) ? raw : [raw];
  return { status: res.statusCode, headers: res.headers, body, setCookies, json: <T>() => JSON.parse(body) as T };
}

/** The value set for `name` by a response (undefined when not set; '' when cleared). */
export function cookieValue(a: Answer, name = 'authgate_session'): string | undefined {
  for (const c of a.setCookies) {
    const [pair] = c.split(';');
    const eq = pair!.indexOf('=');
    if (pair!.slice(0, eq).trim() === name) return decodeURIComponent(pair!.slice(eq + 1));
  }
  return undefined;
}

export function setCookieFor(a: Answer, name = 'authgate_session'): string | undefined {
  return a.setCookies.find((c) => c.startsWith(`${name}=`));
}

export async function jsonLogin(base: string, username: string, password: string, headers: Record<string, string> = {}): Promise<Answer> {
  return call(`${base}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ username, password }) });
}

export async function formLogin(base: string, fields: Record<string, string>, headers: Record<string, string> = {}): Promise<Answer> {
  return call(`${base}/.auth/login`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', origin: base, ...headers }, body: new URLSearchParams(fields).toString() });
}

export async function me(base: string, cookie: string | undefined): Promise<Answer> {
  return call(`${base}/.auth/me`, { headers: cookie === undefined ? {} : { cookie: `authgate_session=${cookie}` } });
}

/** A session cookie for alice, by JSON login. */
export async function signIn(base: string, user: keyof typeof PASSWORDS = 'alice'): Promise<string> {
  const a = await jsonLogin(base, user === 'mfa' ? 'mfa-user' : user, PASSWORDS[user]);
  const v = cookieValue(a);
  if (a.status !== 200 || v === undefined) throw new Error(`login failed: ${a.status} ${a.body}`);
  return v;
}
