// Peers in the same run, when installed (the bench never installs anything): nginx proxy_pass
// without auth and with auth_basic over a bcrypt htpasswd, and HAProxy without auth and with
// jwt_verify RS256. Same upstream, same credentials, same load; one worker/thread each, pinned
// like the gateway, so all are compared on one core.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { EXT_AUDIENCE, type BenchFixtures } from './fixtures.js';
import { spawnProgram } from './procs.js';

export interface Peer {
  name: 'nginx' | 'haproxy';
  url: string;
  pid: number;
  version: string;
  stop(): Promise<void>;
}

function which(cmd: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${cmd}`], { encoding: 'utf8' });
  const p = r.stdout.trim();
  return r.status === 0 && p !== '' ? p : undefined;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function answers(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status === 200;
  } catch {
    return false;
  }
}

export function peerAvailability(): { nginx?: string; haproxy?: string } {
  return { nginx: which('nginx'), haproxy: which('haproxy') };
}

export async function startNginx(bin: string, fx: BenchFixtures, upstream: string, core: number | undefined): Promise<Peer> {
  const dir = join(fx.dir, 'nginx');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  // nginx's worker may run as nobody: it must be able to read the htpasswd file.
  chmodSync(fx.dir, 0o755);
  chmodSync(dir, 0o755);
  const htpasswd = join(dir, 'htpasswd');
  writeFileSync(htpasswd, `${fx.user.name}:${fx.user.bcryptHash}\n`, { mode: 0o644 });
  const port = await freePort();
  const up = new URL(upstream);
  const root = process.getuid?.() === 0;
  const proxied = `
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;`;
  const conf = `
${root ? 'user root root;' : ''}
worker_processes 1;
daemon off;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${join(dir, 'tmp')};
  proxy_temp_path ${join(dir, 'tmp')};
  fastcgi_temp_path ${join(dir, 'tmp')};
  uwsgi_temp_path ${join(dir, 'tmp')};
  scgi_temp_path ${join(dir, 'tmp')};
  keepalive_requests 1000000;
  upstream backend { server ${up.hostname}:${up.port}; keepalive 256; }
  server {
    listen 127.0.0.1:${port};
    location /plain/ {${proxied}
    }
    location /basic/ {
      auth_basic "bench";
      auth_basic_user_file ${htpasswd};
      proxy_set_header Authorization "";
      proxy_set_header X-Auth-User $remote_user;${proxied}
    }
  }
}
`;
  const file = join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const url = `http://127.0.0.1:${port}`;
  const p = await spawnProgram('nginx', bin, ['-c', file, '-e', join(dir, 'error.log')], core, () => answers(`${url}/plain/x`));
  const version = spawnSync(bin, ['-v'], { encoding: 'utf8' }).stderr.trim().replace(/^nginx version: /, '');
  return { name: 'nginx', url, pid: p.pid, version, stop: p.stop };
}

export async function startHaproxy(bin: string, fx: BenchFixtures, upstream: string, core: number | undefined): Promise<Peer> {
  const dir = join(fx.dir, 'haproxy');
  mkdirSync(dir, { recursive: true });
  const port = await freePort();
  const up = new URL(upstream);
  // The same checks the gateway's jwt route makes: alg, signature, exp, iss, aud.
  const conf = `
global
  nbthread 1
  maxconn 4096

defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  option http-keep-alive
  http-reuse always

frontend fe
  bind 127.0.0.1:${port}
  use_backend be_jwt if { path_beg /jwt/ }
  default_backend be_plain

backend be_plain
  option forwardfor
  server up ${up.hostname}:${up.port}

backend be_jwt
  option forwardfor
  http-request deny deny_status 401 unless { req.hdr(authorization) -m beg "Bearer " }
  http-request set-var(txn.bearer) http_auth_bearer
  http-request set-var(txn.jwt_alg) var(txn.bearer),jwt_header_query('$.alg')
  http-request deny deny_status 401 unless { var(txn.jwt_alg) -m str RS256 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_verify(txn.jwt_alg,"${fx.extPublicKeyFile}") -m int 1 }
  http-request set-var(txn.now) date()
  http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
  http-request deny deny_status 401 if { var(txn.exp),sub(txn.now) -m int le 0 }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('$.iss') -m str "${fx.aux.issuer}" }
  http-request deny deny_status 401 unless { var(txn.bearer),jwt_payload_query('$.aud') -m str "${EXT_AUDIENCE}" }
  http-request set-header X-Auth-User %[var(txn.bearer),jwt_payload_query('$.sub')]
  http-request del-header authorization
  server up ${up.hostname}:${up.port}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, conf);
  const check = spawnSync(bin, ['-c', '-f', file], { encoding: 'utf8' });
  if (check.status !== 0) throw new Error(`haproxy config refused: ${(check.stderr || check.stdout).trim()}`);
  const url = `http://127.0.0.1:${port}`;
  const p = await spawnProgram('haproxy', bin, ['-db', '-f', file], core, () => answers(`${url}/plain/x`));
  const version = (spawnSync(bin, ['-v'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '').replace(/^HAProxy version /, '').split(' ')[0] ?? '';
  return { name: 'haproxy', url, pid: p.pid, version, stop: p.stop };
}
