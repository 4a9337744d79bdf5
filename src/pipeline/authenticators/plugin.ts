// `plugin`: a custom authenticator loaded from an ES module (SPEC 9). The module's default export
// is `{ type, optionsSchema?, needsBody?, create(options, ctx) }`; `create` returns an object with
// `authenticate(request)`. Options are validated against `optionsSchema` at load. Everything a
// plugin returns is checked here: the identity's method is always `plugin:<name>`, and an answer
// that is not NOT_MINE / identity / rejection is an error (the chain fails closed on errors).
import { pathToFileURL } from 'node:url';
import type { FastifyBaseLogger } from 'fastify';
import { Ajv, type ErrorObject } from 'ajv';
import ajvFormats from 'ajv-formats';
import type { AuthenticatorConfigOf } from '../../config/schema.js';
import { findExistingFile } from '../../config/paths.js';
import type { GatewayContext } from '../../context.js';
import { ERROR_CATALOGUE, type ErrorCode } from '../../errors.js';
import type { Store } from '../../store/types.js';
import { NOT_MINE, rejected, type Authenticator, type AuthOutcome, type AuthRequest, type Identity, type NotMine, type Rejected } from '../types.js';

/** What a plugin fills in for an identity; the rest (method, authenticator, defaults) is the gateway's. */
export interface PluginIdentity {
  user: string;
  email?: string | undefined;
  groups?: readonly string[] | undefined;
  scopes?: readonly string[] | undefined;
  /** True when the plugin itself verified a second factor. */
  mfa?: boolean | undefined;
  amr?: readonly string[] | undefined;
  /** Epoch seconds of the sign-in; defaults to now. */
  authTime?: number | undefined;
  subject?: string | undefined;
  tokenId?: string | undefined;
  expiresAt?: number | undefined;
}

export interface PluginAuthenticated {
  readonly kind: 'identity';
  readonly identity: PluginIdentity;
}

export type PluginOutcome = NotMine | PluginAuthenticated | Rejected;

/** The helpers a plugin gets, so a plugin file needs no import from the gateway's internals. */
export interface PluginResults {
  readonly NOT_MINE: NotMine;
  authenticated(identity: PluginIdentity): PluginAuthenticated;
  rejected(code: ErrorCode, detail?: string, headers?: Record<string, string>): Rejected;
}

export interface PluginContext {
  /** The authenticator's name in the config (the identity method is `plugin:<name>`). */
  readonly name: string;
  /** Directory of the config file, for paths in options. */
  readonly configDir: string;
  readonly publicUrl: URL;
  /** The gateway's state store (shared across instances with the redis driver). */
  readonly store: Store;
  /** A logger bound to this authenticator. Never log a credential. */
  readonly log: FastifyBaseLogger;
  readonly results: PluginResults;
}

export interface PluginInstance {
  /** Declared here or on the definition: the route buffers the body for `request.body`. */
  readonly needsBody?: boolean;
  authenticate(request: AuthRequest): PluginOutcome | Promise<PluginOutcome>;
  challenge?(rejection?: Rejected): string | undefined;
  ready?(): Promise<'ok' | 'degraded'>;
  close?(): Promise<void> | void;
}

export interface PluginDefinition {
  /** A short name for the kind of plugin, e.g. `hmac-signature` (for logs; not the config type). */
  readonly type: string;
  /** JSON Schema for `options`; checked at load. */
  readonly optionsSchema?: Record<string, unknown>;
  readonly needsBody?: boolean;
  create(options: Record<string, unknown>, ctx: PluginContext): PluginInstance | Promise<PluginInstance>;
}

export const PLUGIN_MODULE_EXTENSIONS = ['', '.js', '.mjs', '.ts'] as const;

const pluginResults: PluginResults = Object.freeze({
  NOT_MINE,
  authenticated: (identity: PluginIdentity): PluginAuthenticated => ({ kind: 'identity', identity }),
  rejected,
});

/** Control characters (and line separators) never go into an identity value (THREATS 91). */
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const MAX_VALUE_LENGTH = 1024;
const MAX_LIST_LENGTH = 256;

function isDefinition(value: unknown): value is PluginDefinition {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return typeof v.type === 'string' && v.type !== '' && typeof v.create === 'function'
    && (v.optionsSchema === undefined || (v.optionsSchema !== null && typeof v.optionsSchema === 'object'))
    && (v.needsBody === undefined || typeof v.needsBody === 'boolean');
}

function describeErrors(errors: ErrorObject[] | null | undefined): string {
  // ajv's messages name the rule, never the offending value (no secret can leak through here).
  return (errors ?? []).map((e) => `options${e.instancePath.replace(/\//g, '.')} ${e.message ?? 'is invalid'}`).join('; ');
}

export function validatePluginOptions(name: string, schema: Record<string, unknown> | undefined, options: Record<string, unknown>): Record<string, unknown> {
  if (schema === undefined) return options;
  const ajv = new Ajv({ allErrors: true, useDefaults: true, strict: false });
  (ajvFormats as unknown as (a: Ajv) => void)(ajv);
  let validate;
  try {
    validate = ajv.compile(schema);
  } catch (err) {
    throw new Error(`authenticators.${name}: the plugin's optionsSchema is not a valid JSON Schema (${(err as Error).message})`);
  }
  const copy = structuredClone(options);
  if (!validate(copy)) throw new Error(`authenticators.${name}: invalid plugin options: ${describeErrors(validate.errors)}`);
  return copy;
}

/** Load a plugin definition from a module path (relative to the config directory). */
export async function loadPluginDefinition(name: string, modulePath: string, configDir: string): Promise<PluginDefinition> {
  const file = await findExistingFile(configDir, modulePath, PLUGIN_MODULE_EXTENSIONS);
  if (file === undefined) throw new Error(`authenticators.${name}: plugin module '${modulePath}' not found (also tried .js, .mjs, .ts)`);
  let mod: { default?: unknown };
  try {
    mod = (await import(pathToFileURL(file).href)) as { default?: unknown };
  } catch (err) {
    throw new Error(`authenticators.${name}: plugin module '${modulePath}' failed to load: ${(err as Error).message}`);
  }
  if (!isDefinition(mod.default)) {
    throw new Error(`authenticators.${name}: plugin module '${modulePath}' must default-export { type, optionsSchema?, needsBody?, create(options, ctx) }`);
  }
  return mod.default;
}

function stringList(value: unknown, what: string): readonly string[] {
  if (value === undefined) return Object.freeze([]);
  if (!Array.isArray(value) || value.length > MAX_LIST_LENGTH) throw new Error(`${what} must be an array of at most ${MAX_LIST_LENGTH} strings`);
  for (const v of value) {
    if (typeof v !== 'string' || v === '' || v.length > MAX_VALUE_LENGTH || CONTROL.test(v)) throw new Error(`${what} must contain non-empty strings without control characters`);
  }
  return Object.freeze([...(value as string[])]);
}

function optionalString(value: unknown, what: string): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '' || value.length > MAX_VALUE_LENGTH || CONTROL.test(value)) throw new Error(`${what} must be a non-empty string without control characters`);
  return value;
}

function optionalNumber(value: unknown, what: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0) throw new Error(`${what} must be a finite number of seconds`);
  return value;
}

/** The identity a plugin returned, checked and completed. Throws when it is malformed. */
export function completeIdentity(name: string, raw: unknown): Identity {
  if (raw === null || typeof raw !== 'object') throw new Error('identity must be an object');
  const p = raw as Record<string, unknown>;
  const user = optionalString(p.user, 'identity.user');
  if (user === undefined) throw new Error('identity.user is required');
  if (p.mfa !== undefined && typeof p.mfa !== 'boolean') throw new Error('identity.mfa must be a boolean');
  const amr = stringList(p.amr, 'identity.amr');
  return Object.freeze({
    user,
    email: optionalString(p.email, 'identity.email'),
    groups: stringList(p.groups, 'identity.groups'),
    scopes: stringList(p.scopes, 'identity.scopes'),
    method: `plugin:${name}`,
    authenticator: name,
    mfa: p.mfa === true,
    amr: amr.length > 0 ? amr : Object.freeze(['plugin']),
    authTime: optionalNumber(p.authTime, 'identity.authTime') ?? Math.floor(Date.now() / 1000),
    subject: optionalString(p.subject, 'identity.subject') ?? user,
    tokenId: optionalString(p.tokenId, 'identity.tokenId'),
    expiresAt: optionalNumber(p.expiresAt, 'identity.expiresAt'),
  });
}

/** Checks a plugin's answer; throws (the chain then fails closed) when it is none of the three. */
export function checkOutcome(name: string, outcome: unknown): AuthOutcome {
  if (outcome === null || typeof outcome !== 'object') throw new Error(`plugin ${name} returned no outcome`);
  const o = outcome as { kind?: unknown; identity?: unknown; code?: unknown; detail?: unknown; headers?: unknown };
  if (o.kind === 'not-mine') return NOT_MINE;
  if (o.kind === 'identity') {
    try {
      return { kind: 'identity', identity: completeIdentity(name, o.identity) };
    } catch (err) {
      throw new Error(`plugin ${name} returned an invalid identity: ${(err as Error).message}`);
    }
  }
  if (o.kind === 'reject') {
    // An unknown code is still a refusal, never a pass.
    const code: ErrorCode = typeof o.code === 'string' && Object.hasOwn(ERROR_CATALOGUE, o.code) ? (o.code as ErrorCode) : 'invalid_credentials';
    const detail = typeof o.detail === 'string' && !CONTROL.test(o.detail) ? o.detail.slice(0, 300) : undefined;
    let headers: Record<string, string> | undefined;
    if (o.headers !== null && typeof o.headers === 'object') {
      headers = {};
      for (const [k, v] of Object.entries(o.headers as Record<string, unknown>)) {
        if (/^[A-Za-z0-9-]+$/.test(k) && typeof v === 'string' && !CONTROL.test(v)) headers[k] = v;
      }
    }
    return rejected(code, detail, headers);
  }
  throw new Error(`plugin ${name} returned an unknown outcome`);
}

function collectStrings(value: unknown, out: string[] = []): string[] {
  if (typeof value === 'string') out.push(value);
  else if (Array.isArray(value)) for (const v of value) collectStrings(v, out);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) collectStrings(v, out);
  return out;
}

export async function createPluginAuthenticator(name: string, cfg: AuthenticatorConfigOf<'plugin'>, ctx: GatewayContext): Promise<Authenticator> {
  const definition = await loadPluginDefinition(name, cfg.module, ctx.configDir);
  const options = validatePluginOptions(name, definition.optionsSchema, cfg.options ?? {});
  const log = ctx.log.child({ authenticator: name, plugin: definition.type });
  const pluginCtx: PluginContext = Object.freeze({ name, configDir: ctx.configDir, publicUrl: ctx.publicUrl, store: ctx.store, log, results: pluginResults });
  let instance: PluginInstance;
  try {
    instance = await definition.create(options, pluginCtx);
  } catch (err) {
    throw new Error(`authenticators.${name}: plugin '${definition.type}' failed to start: ${(err as Error).message}`);
  }
  if (instance === null || typeof instance !== 'object' || typeof instance.authenticate !== 'function') {
    throw new Error(`authenticators.${name}: plugin '${definition.type}' create() must return an object with authenticate(request)`);
  }
  const needsBody = definition.needsBody === true || instance.needsBody === true;
  const optionStrings = collectStrings(options).filter((v) => v.length >= 6).sort((a, b) => b.length - a.length);
  const scrub = (message: string): string => {
    let out = message;
    for (const v of optionStrings) out = out.split(v).join('[redacted]');
    return out.slice(0, 300);
  };

  const authenticator: Authenticator = {
    name,
    // Always 'plugin': a plugin can never pass for a built-in type (e.g. the caller chain's session).
    type: 'plugin',
    needsBody,
    async authenticate(request: AuthRequest): Promise<AuthOutcome> {
      let outcome: unknown;
      try {
        outcome = await instance.authenticate(request);
      } catch (err) {
        // A plugin's message may quote its options (a secret): log it scrubbed, rethrow a plain
        // error (the chain fails closed), keeping only the store-unavailable signal.
        const e = err as { name?: unknown; message?: unknown; code?: unknown };
        log.error({ err: { name: e?.name, message: scrub(typeof e?.message === 'string' ? e.message : String(err)) } }, 'plugin threw');
        throw Object.assign(new Error(`plugin ${name} failed`), e?.code === 'store_unavailable' ? { code: 'store_unavailable' } : {});
      }
      return checkOutcome(name, outcome);
    },
  };
  const out: { -readonly [K in keyof Authenticator]: Authenticator[K] } = authenticator;
  if (typeof instance.challenge === 'function') {
    const challenge = instance.challenge.bind(instance);
    out.challenge = (rejection?: Rejected) => {
      let c: unknown;
      try {
        c = challenge(rejection);
      } catch (err) {
        log.error({ err }, 'plugin challenge failed');
        return undefined;
      }
      return typeof c === 'string' && c !== '' && !CONTROL.test(c) ? c : undefined;
    };
  }
  if (typeof instance.ready === 'function') out.ready = instance.ready.bind(instance);
  if (typeof instance.close === 'function') out.close = instance.close.bind(instance);
  return authenticator;
}
