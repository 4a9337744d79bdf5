// `oidc`: a sign-in provider (SPEC 3, 4, 6). In a route's chain it never reads a credential (it
// answers not-mine): the session its login creates is accepted by the `session` authenticator.
// It owns the provider client (discovery, keys) that the /oidc/:name/* endpoints use, and
// reports the provider to /readyz as `oidc:<name>`.
import type { GatewayContext } from '../../context.js';
import { GithubProvider } from '../../oidc/github.js';
import { OpenIdProvider } from '../../oidc/openid.js';
import type { OidcAuthenticatorConfig } from '../../oidc/presets.js';
import type { LoginProvider } from '../../oidc/types.js';
import { NOT_MINE, type Authenticator } from '../types.js';

const providers = new WeakMap<Authenticator, { provider: LoginProvider; cfg: OidcAuthenticatorConfig }>();

/** The provider behind an `oidc` authenticator (for the OIDC endpoints), else undefined. */
export function loginProviderOf(auth: Authenticator | undefined): { provider: LoginProvider; cfg: OidcAuthenticatorConfig } | undefined {
  return auth === undefined ? undefined : providers.get(auth);
}

export function createOidcAuthenticator(name: string, cfg: OidcAuthenticatorConfig, ctx: GatewayContext): Authenticator {
  const provider: LoginProvider = cfg.provider === 'github' ? new GithubProvider(name, cfg, ctx) : new OpenIdProvider(name, cfg, ctx);
  const authenticator: Authenticator = {
    name,
    type: 'oidc',
    authenticate: () => NOT_MINE,
    ready: () => provider.ready(),
    close: () => provider.close(),
  };
  providers.set(authenticator, { provider, cfg });
  return authenticator;
}
