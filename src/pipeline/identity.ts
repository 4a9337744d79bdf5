// What the upstream receives about the caller (SPEC 4 steps 3 and 7): inbound identity headers
// are stripped (case-insensitive, '_' and '.' count as '-'), the gateway's own are set.
import type { IncomingHttpHeaders } from 'node:http';
import type { IdentityConfig } from '../config/schema.js';
import type { Identity } from './types.js';

export interface IdentityHeaderNames {
  user: string;
  email: string;
  groups: string;
  scopes: string;
  method: string;
  mfa: string;
}

/** Lower-cased names with '_' and '.' folded to '-', the way header aliases are compared. */
export function foldHeaderName(name: string): string {
  return name.toLowerCase().replace(/[_.]/g, '-');
}

function startsWithFolded(name: string, foldedPrefix: string): boolean {
  if (name.length < foldedPrefix.length) return false;
  for (let i = 0; i < foldedPrefix.length; i++) {
    let c = name.charCodeAt(i);
    if (c >= 65 && c <= 90) c += 32;
    else if (c === 95 || c === 46) c = 45;
    if (c !== foldedPrefix.charCodeAt(i)) return false;
  }
  return true;
}

export class IdentityHeaders {
  readonly names: IdentityHeaderNames;
  /** Lower-case header names the gateway sets. */
  readonly managed: readonly string[];
  private readonly foldedPrefixes: readonly string[];
  private readonly foldedExact: ReadonlySet<string>;
  readonly assertionHeader: string | undefined;

  constructor(cfg: IdentityConfig | undefined, assertionEnabled: boolean) {
    const h = cfg?.headers ?? {};
    this.names = {
      user: (h.user ?? 'X-Auth-User').toLowerCase(),
      email: (h.email ?? 'X-Auth-Email').toLowerCase(),
      groups: (h.groups ?? 'X-Auth-Groups').toLowerCase(),
      scopes: (h.scopes ?? 'X-Auth-Scopes').toLowerCase(),
      method: (h.method ?? 'X-Auth-Method').toLowerCase(),
      mfa: (h.mfa ?? 'X-Auth-Mfa').toLowerCase(),
    };
    this.assertionHeader = assertionEnabled ? (cfg?.assertion?.header ?? 'X-Auth-Assertion').toLowerCase() : undefined;
    this.managed = [...Object.values(this.names), ...(this.assertionHeader ? [this.assertionHeader] : [])];
    this.foldedPrefixes = (cfg?.strip ?? ['X-Auth-']).map(foldHeaderName);
    // Managed names outside the strip prefixes are stripped too, in every spelling.
    this.foldedExact = new Set([...this.managed, 'x-auth-assertion'].map(foldHeaderName));
  }

  /** True when an inbound header must never reach the upstream as the client sent it. */
  isManaged(name: string): boolean {
    const prefixes = this.foldedPrefixes;
    for (let i = 0; i < prefixes.length; i++) if (startsWithFolded(name, prefixes[i] as string)) return true;
    return this.foldedExact.size > 0 && (name.includes('_') || name.includes('.') || this.foldedExact.has(name)) && this.foldedExact.has(foldHeaderName(name));
  }

  /** Set the identity headers; values are made safe for a header line. */
  apply(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>, identity: Identity): void {
    const n = this.names;
    headers[n.user] = headerValue(identity.user);
    if (identity.email) headers[n.email] = headerValue(identity.email);
    if (identity.groups.length > 0) headers[n.groups] = headerValue(identity.groups.join(','));
    if (identity.scopes.length > 0) headers[n.scopes] = headerValue(identity.scopes.join(' '));
    headers[n.method] = identity.method;
    headers[n.mfa] = identity.mfa ? 'true' : 'false';
  }
}

/**
 * Header values are printable ASCII. Anything else (non-ASCII names, and — defensively —
 * control characters, which authenticators already refuse) is percent-encoded, so a value can
 * never split a header line (THREATS 91).
 */
export function headerValue(value: string): string {
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) return encodeURIComponent(value).replace(/%2C/g, ',').replace(/%20/g, ' ');
  }
  return value;
}
