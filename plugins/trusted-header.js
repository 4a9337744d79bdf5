// @ts-check
// Identity from a header set by a trusted internal load balancer (e.g. one that already did
// mTLS or SSO), as an authgate plugin authenticator.
//
// Mine: a request carrying the user header. It is believed only when the request's direct peer
// (not any X-Forwarded-For) is inside `cidrs`; from anywhere else the request is refused (401),
// never passed on as anonymous, because a client sending the header is attacking the setup.
// The load balancer must remove any copy of these headers its own clients send.
//
// Config:
//   lb: { type: plugin, module: ./plugins/trusted-header,
//         options: { cidrs: [10.0.0.0/8], userHeader: X-LB-User, groupsHeader: X-LB-Groups } }
import { BlockList, isIPv4, isIPv6 } from 'node:net';

/** Printable ASCII without ',' (the list separator) and without spaces at the ends. */
const VALUE = /^[\x21-\x2b\x2d-\x7e]([\x20-\x2b\x2d-\x7e]{0,254}[\x21-\x2b\x2d-\x7e])?$/;

/**
 * @typedef {import('../src/pipeline/authenticators/plugin.js').PluginDefinition} PluginDefinition
 * @typedef {import('../src/pipeline/types.js').AuthRequest} AuthRequest
 * @typedef {{ cidrs: string[], userHeader: string, groupsHeader?: string, emailHeader?: string,
 *   groups: string[] }} TrustedHeaderOptions
 */

/** @param {string[]} cidrs @param {string} name */
function compileCidrs(cidrs, name) {
  const list = new BlockList();
  for (const entry of cidrs) {
    const [addr = '', bits] = entry.split('/');
    const family = isIPv4(addr) ? 'ipv4' : isIPv6(addr) ? 'ipv6' : undefined;
    if (family === undefined) throw new Error(`authenticators.${name}: options.cidrs: '${entry}' is not an IP address or CIDR`);
    if (bits === undefined) {
      list.addAddress(addr, family);
      continue;
    }
    const prefix = Number(bits);
    if (!/^[0-9]{1,3}$/.test(bits) || prefix > (family === 'ipv4' ? 32 : 128)) throw new Error(`authenticators.${name}: options.cidrs: '${entry}' has an invalid prefix length`);
    list.addSubnet(addr, prefix, family);
  }
  return list;
}

/** @param {BlockList} list @param {string | undefined} address */
function contains(list, address) {
  if (!address) return false;
  const a = address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
  if (isIPv4(a)) return list.check(a, 'ipv4');
  if (isIPv6(a)) return list.check(a, 'ipv6');
  return false;
}

/** @param {string | string[] | undefined} value @returns {string | undefined | 'duplicate'} */
function single(value) {
  if (value === undefined) return undefined;
  if (Array.isArray(value)) return value.length === 1 ? value[0] : 'duplicate';
  return value;
}

/** @type {PluginDefinition} */
const plugin = {
  type: 'trusted-header',
  optionsSchema: {
    type: 'object',
    additionalProperties: false,
    required: ['cidrs'],
    properties: {
      cidrs: { type: 'array', minItems: 1, items: { type: 'string', minLength: 1 }, description: 'Addresses of the load balancers allowed to set the headers' },
      userHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$', default: 'X-LB-User' },
      groupsHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$', description: 'Optional: comma-separated groups' },
      emailHeader: { type: 'string', pattern: '^[A-Za-z0-9-]+$' },
      groups: { type: 'array', items: { type: 'string', minLength: 1 }, default: [], description: 'Groups every identity from this header gets' },
    },
  },

  create(rawOptions, ctx) {
    const options = /** @type {TrustedHeaderOptions} */ (/** @type {unknown} */ (rawOptions));
    const { NOT_MINE, authenticated, rejected } = ctx.results;
    const trusted = compileCidrs(options.cidrs, ctx.name);
    const userHeader = options.userHeader.toLowerCase();
    const groupsHeader = options.groupsHeader?.toLowerCase();
    const emailHeader = options.emailHeader?.toLowerCase();

    return {
      /** @param {AuthRequest} request */
      authenticate(request) {
        const user = single(request.headers[userHeader]);
        if (user === undefined) return NOT_MINE;
        if (!contains(trusted, request.peer)) {
          ctx.log.warn({ peer: request.peer }, 'identity header from an address outside the trusted load balancers');
          return rejected('invalid_credentials', 'This identity header is not accepted from your address.');
        }
        if (user === 'duplicate' || user.includes(',')) return rejected('bad_request', 'Duplicate identity headers.');
        if (!VALUE.test(user)) return rejected('invalid_credentials', 'Malformed identity header.');

        const groups = [...options.groups];
        if (groupsHeader !== undefined) {
          const raw = single(request.headers[groupsHeader]);
          if (raw === 'duplicate') return rejected('bad_request', 'Duplicate groups headers.');
          if (raw !== undefined) {
            for (const part of raw.split(',')) {
              const g = part.trim();
              if (g === '') continue;
              if (!VALUE.test(g)) return rejected('invalid_credentials', 'Malformed groups header.');
              if (!groups.includes(g)) groups.push(g);
            }
          }
        }
        let email;
        if (emailHeader !== undefined) {
          const raw = single(request.headers[emailHeader]);
          if (raw === 'duplicate') return rejected('bad_request', 'Duplicate email headers.');
          if (raw !== undefined && raw !== '') {
            if (!VALUE.test(raw) || !raw.includes('@')) return rejected('invalid_credentials', 'Malformed email header.');
            email = raw;
          }
        }
        return authenticated({ user, email, groups, amr: ['fed'] });
      },
    };
  },
};

export default plugin;
