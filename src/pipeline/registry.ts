// Maps each authenticator `type` from the config to its factory (one line per type).
import type { AuthenticatorConfig, AuthenticatorConfigOf, AuthenticatorType } from '../config/schema.js';
import type { GatewayContext } from '../context.js';
import type { Authenticator } from './types.js';
import { createAnonymousAuthenticator } from './authenticators/anonymous.js';
import { createTokenAuthenticator } from './authenticators/token.js';
import { createIntrospectionAuthenticator } from './authenticators/introspection.js';

export type AuthenticatorFactory = (name: string, cfg: AuthenticatorConfig, ctx: GatewayContext) => Authenticator | Promise<Authenticator>;

export const AUTHENTICATOR_FACTORIES: Partial<Record<AuthenticatorType, AuthenticatorFactory>> = {
  anonymous: (name) => createAnonymousAuthenticator(name),
  token: (name, cfg, ctx) => createTokenAuthenticator(name, cfg as AuthenticatorConfigOf<'token'>, ctx),
  introspection: (name, cfg, ctx) => createIntrospectionAuthenticator(name, cfg as AuthenticatorConfigOf<'introspection'>, ctx),
};
