// The demo upstream: answers every request with the method, path and headers it received, as
// JSON — so a newcomer can see what the gateway forwards (`curl -u demo:demo …/echo/`).
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface EchoRecord {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  rawHeaders: string[];
  body: string;
}

export interface EchoServer {
  readonly url: string;
  readonly server: Server;
  /** Every request received, in order (tests assert on it; the demo ignores it). */
  readonly received: EchoRecord[];
  close(): Promise<void>;
}

export async function startEcho(host = '127.0.0.1', port = 0, opts: { record?: boolean; maxBody?: number } = {}): Promise<EchoServer> {
  const received: EchoRecord[] = [];
  const maxBody = opts.maxBody ?? 64 * 1024 * 1024;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= maxBody) chunks.push(c);
    });
    req.on('end', () => {
      const body = Buffer.concat(chunks);
      const rec: EchoRecord = { method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body: body.length <= 65536 ? body.toString('utf8') : `<${size} bytes>` };
      if (opts.record !== false) received.push(rec);
      const out = JSON.stringify({ method: rec.method, url: rec.url, headers: rec.headers, bodyLength: size, body: rec.body.length <= 4096 ? rec.body : undefined }, null, 2);
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(out) });
      res.end(req.method === 'HEAD' ? undefined : out);
    });
  });
  await new Promise<void>((resolve) => server.listen({ host, port }, resolve));
  const addr = server.address() as AddressInfo;
  return {
    url: `http://${addr.address}:${addr.port}`,
    server,
    received,
    close: () => new Promise<void>((resolve) => { server.closeAllConnections(); server.close(() => resolve()); }),
  };
}
