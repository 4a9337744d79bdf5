// The benchmark's upstream: answers every request at once with a small fixed JSON body, so the
// figures measure the proxy in front of it. Runs as its own child process (see run.ts).
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const BODY = Buffer.from('{"ok":true}\n');

const server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
  // Drain any request body before answering, as a real service would.
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length });
    res.end(BODY);
  });
});
server.keepAliveTimeout = 60_000;
server.headersTimeout = 65_000;

server.listen({ host: '127.0.0.1', port: 0 }, () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ ready: true, url: `http://127.0.0.1:${port}`, pid: process.pid });
});

process.on('message', (m: { cmd?: string; id?: number }) => {
  if (m.cmd === 'exit') {
    server.closeAllConnections();
    server.close(() => process.exit(0));
  }
});
process.on('disconnect', () => process.exit(0));
