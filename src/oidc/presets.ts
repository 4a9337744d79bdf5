// One-line provider presets (issue 10): what `preset: google | entra | keycloak | gitlab | auth0 |
// okta` fills in when the config leaves it out. Every value can still be set explicitly.
import type { AuthenticatorConfigOf } from '../config/schema.js';
import type { ClaimsMapping } from '../jose/claims.js';

export type OidcAuthenticatorConfig = AuthenticatorConfigOf<'oidc'>;

const ENTRA_AUTHORITY = 'https://login.microsoftonline.com';
const MULTI_TENANT = new Set(['common', 'organizations']);

export interface ResolvedOidcSettings {
  /** The issuer discovery starts from (Entra multi-tenant: the `{tenantid}` template's base). */
  readonly issuer: string;
  readonly scopes: readonly string[];
  readonly claims: ClaimsMapping;
  /** Check allowedDomains against Google's `hd` claim instead of the email's domain. */
  readonly hostedDomainClaim: boolean;
  /** Entra: tenant ids accepted (the `tid` claim); undefined = no tenant rule. */
  readonly allowedTenants: readonly string[] | undefined;
  /** Entra multi-tenant: the issuer varies by tenant (`.../{tid}/v2.0`). */
  readonly multiTenant: boolean;
  /** Entra: refuse tokens whose group list did not fit (overage), never read as "no groups". */
  readonly detectGroupsOverage: boolean;
}

export function resolveOidcSettings(cfg: OidcAuthenticatorConfig): ResolvedOidcSettings {
  const preset = cfg.preset;
  const defaults = { username: undefined as string | undefined, groups: undefined as string | undefined };
  let issuer = cfg.issuer;
  let multiTenant = false;
  switch (preset) {
    case 'google':
      issuer ??= 'https://accounts.google.com';
      defaults.username = 'email';
      break;
    case 'gitlab':
      issuer ??= 'https://gitlab.com';
      defaults.username = 'nickname';
      defaults.groups = 'groups';
      break;
    case 'entra': {
      const authority = (cfg.authority ?? ENTRA_AUTHORITY).replace(/\/+$/, '');
      multiTenant = cfg.tenant !== undefined && MULTI_TENANT.has(cfg.tenant);
      issuer ??= `${authority}/${cfg.tenant ?? 'common'}/v2.0`;
      defaults.username = 'preferred_username';
      defaults.groups = 'groups';
      break;
    }
    case 'keycloak':
      defaults.groups = 'realm_access.roles';
      break;
    default:
      break;
  }
  if (issuer === undefined) throw new Error('an issuer is required');
  return {
    issuer,
    scopes: cfg.scopes ?? ['openid', 'email', 'profile'],
    claims: {
      username: cfg.claims?.username ?? defaults.username,
      email: cfg.claims?.email,
      groups: cfg.claims?.groups ?? defaults.groups,
    },
    hostedDomainClaim: preset === 'google',
    allowedTenants: cfg.allowedTenants,
    multiTenant,
    detectGroupsOverage: preset === 'entra',
  };
}
