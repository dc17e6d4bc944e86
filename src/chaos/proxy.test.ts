import { connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { LinkProxy } from './proxy.js';

let echo: Server;
let echoPort: number;
let proxy: LinkProxy;
const sockets: Socket[] = [];

beforeEach(async () => {
  echo = createServer((s) => {
    sockets.push(s);
    s.on('error', () => {});
    s.pipe(s);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  const address = echo.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  echoPort = address.port;
  proxy = await LinkProxy.start({ targetHost: '127.0.0.1', targetPort: echoPort });
});

afterEach(async () => {
  await proxy.close();
  for (const s of sockets.splice(0)) s.destroy();
  await new Promise((resolve) => echo.close(resolve));
});

/** Connects through the proxy; resolves once connected. */
function open(): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port: proxy.port }, () => resolve(s));
    sockets.push(s);
    s.once('error', reject);
  });
}

/** Sends `text` and resolves with the echo, or 'closed' if the connection ends first, or 'silent' after `ms`. */
function roundTrip(s: Socket, text: string, ms = 2000): Promise<string> {
  return new Promise((resolve) => {
    let got = '';
    const timer = setTimeout(() => resolve('silent'), ms);
    s.on('data', (d: Buffer) => {
      got += d.toString();
      if (got.length >= text.length) {
        clearTimeout(timer);
        resolve(got);
      }
    });
    s.once('close', () => {
      clearTimeout(timer);
      resolve('closed');
    });
    s.on('error', () => {});
    s.write(text);
  });
}

function closed(s: Socket): Promise<void> {
  return new Promise((resolve) => (s.destroyed ? resolve() : s.once('close', () => resolve())));
}

describe('LinkProxy', () => {
  it('forwards both directions', async () => {
    const s = await open();
    expect(await roundTrip(s, 'hello')).toBe('hello');
    expect(proxy.stats.accepted).toBe(1);
  });

  it('block() cuts open connections and refuses new ones; unblock() lets them through again', async () => {
    const s = await open();
    expect(await roundTrip(s, 'a')).toBe('a');
    s.on('error', () => {});
    proxy.block();
    await closed(s);
    expect(proxy.connections).toBe(0);
    // A new connection is accepted by the kernel and reset at once: nothing comes back.
    const t = await open().catch(() => undefined);
    if (t !== undefined) expect(await roundTrip(t, 'b', 1000)).toBe('closed');
    expect(proxy.stats.refused).toBeGreaterThanOrEqual(1);
    proxy.unblock();
    expect(await roundTrip(await open(), 'c')).toBe('c');
  });

  it('delay(ms) holds every chunk back, in order', async () => {
    const s = await open();
    proxy.delay(150);
    const started = performance.now();
    // Both directions are delayed: at least two delays for the round trip.
    const answer = await roundTrip(s, 'x'.repeat(10), 3000);
    expect(answer).toBe('x'.repeat(10));
    expect(performance.now() - started).toBeGreaterThanOrEqual(280);
    proxy.delay(0);
    const quick = performance.now();
    const u = await open();
    expect(await roundTrip(u, 'y')).toBe('y');
    expect(performance.now() - quick).toBeLessThan(150);
  });

  it('keeps the order of chunks when the delay goes down', async () => {
    const s = await open();
    proxy.delay(200);
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.write('first-');
    await new Promise((r) => setTimeout(r, 20));
    proxy.delay(0);
    s.write('second');
    await new Promise((r) => setTimeout(r, 600));
    expect(got).toBe('first-second');
  });

  it('drop(1) resets the connection on the first chunk; drop(0) is a clean link', async () => {
    proxy.drop(1);
    const s = await open();
    expect(await roundTrip(s, 'lost')).toBe('closed');
    expect(proxy.stats.dropped).toBe(1);
    proxy.drop(0);
    expect(await roundTrip(await open(), 'kept')).toBe('kept');
  });

  it('bounds what it buffers: a large transfer through a delayed link arrives whole', async () => {
    await proxy.close();
    proxy = await LinkProxy.start({
      targetHost: '127.0.0.1',
      targetPort: echoPort,
      maxBufferedBytes: 64 * 1024,
    });
    proxy.delay(5);
    const s = await open();
    const big = 'z'.repeat(2 * 1024 * 1024);
    expect((await roundTrip(s, big, 10_000)).length).toBe(big.length);
  });
});
