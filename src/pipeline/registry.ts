// Maps each authenticator `type` from the config to its factory (one line per type).
import type { AuthenticatorConfig, AuthenticatorConfigOf, AuthenticatorType } from '../config/schema.js';
import type { GatewayContext } from '../context.js';
import type { Authenticator } from './types.js';
import { createAnonymousAuthenticator } from './authenticators/anonymous.js';
import { createSessionAuthenticator } from './authenticators/session.js';
import { createTokenAuthenticator } from './authenticators/token.js';
import { createIntrospectionAuthenticator } from './authenticators/introspection.js';
import { createPluginAuthenticator } from './authenticators/plugin.js';
import { createBasicAuthenticator } from './authenticators/basic.js';
import { createApiKeyAuthenticator } from './authenticators/apikey.js';
import { createJwtAuthenticator } from './authenticators/jwt.js';
import { createSimpleJwtAuthenticator } from './authenticators/simplejwt.js';
import { createDjangoSessionAuthenticator } from './authenticators/django-session.js';
import { createOidcAuthenticator } from './authenticators/oidc.js';

export type AuthenticatorFactory = (name: string, cfg: AuthenticatorConfig, ctx: GatewayContext) => Authenticator | Promise<Authenticator>;

export const AUTHENTICATOR_FACTORIES: Partial<Record<AuthenticatorType, AuthenticatorFactory>> = {
  anonymous: (name) => createAnonymousAuthenticator(name),
  session: (name, cfg, ctx) => createSessionAuthenticator(name, cfg as AuthenticatorConfigOf<'session'>, ctx),
  token: (name, cfg, ctx) => createTokenAuthenticator(name, cfg as AuthenticatorConfigOf<'token'>, ctx),
  introspection: (name, cfg, ctx) => createIntrospectionAuthenticator(name, cfg as AuthenticatorConfigOf<'introspection'>, ctx),
  plugin: (name, cfg, ctx) => createPluginAuthenticator(name, cfg as AuthenticatorConfigOf<'plugin'>, ctx),
  basic: (name, cfg, ctx) => createBasicAuthenticator(name, cfg as AuthenticatorConfigOf<'basic'>, ctx),
  apikey: (name, cfg, ctx) => createApiKeyAuthenticator(name, cfg as AuthenticatorConfigOf<'apikey'>, ctx),
  jwt: (name, cfg, ctx) => {
    const c = cfg as AuthenticatorConfigOf<'jwt'>;
    return c.preset === 'simplejwt' ? createSimpleJwtAuthenticator(name, c, ctx) : createJwtAuthenticator(name, c, ctx);
  },
  'django-session': (name, cfg, ctx) => createDjangoSessionAuthenticator(name, cfg as AuthenticatorConfigOf<'django-session'>, ctx),
  oidc: (name, cfg, ctx) => createOidcAuthenticator(name, cfg as AuthenticatorConfigOf<'oidc'>, ctx),
};
