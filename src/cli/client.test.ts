import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { ClientError, normalizeBaseUrl, RaftingClient } from './client.js';

// Each test starts small HTTP servers on loopback that play the nodes of a cluster.

interface Received {
  readonly method: string;
  readonly url: string;
  readonly body: string;
}

type Handler = (request: Received, response: ServerResponse) => void;

const servers: Server[] = [];

afterEach(async () => {
  await Promise.all(servers.splice(0).map((server) => new Promise((resolve) => server.close(resolve))));
});

/** Starts a fake node; resolves with its base URL and the requests it receives. */
async function fakeNode(handle: Handler): Promise<{ url: string; received: Received[] }> {
  const received: Received[] = [];
  const server = createServer((request: IncomingMessage, response) => {
    let body = '';
    request.on('data', (chunk: Buffer) => (body += chunk.toString()));
    request.on('end', () => {
      const entry = { method: request.method ?? '', url: request.url ?? '', body };
      received.push(entry);
      handle(entry, response);
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received };
}

/** A URL where nothing listens. */
async function deadUrl(): Promise<string> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return `http://127.0.0.1:${port}`;
}

function json(response: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) {
  response.writeHead(status, { 'content-type': 'application/json', ...headers });
  response.end(JSON.stringify(body));
}

const noLeader = { error: { code: 'unavailable', message: 'no leader is known at the moment' } };

describe('RaftingClient', () => {
  it('follows a redirect to the leader and re-sends the body', async () => {
    const leader = await fakeNode(({ body }, response) => {
      const { value } = JSON.parse(body) as { value: string };
      json(response, 200, { key: 'k', value, index: 4 });
    });
    const follower = await fakeNode(({ url }, response) => {
      json(
        response,
        307,
        { error: { code: 'not_leader', message: 'the leader is node1' } },
        {
          location: `${leader.url}${url}`,
        },
      );
    });
    const client = new RaftingClient([follower.url]);
    expect(await client.put('k', 'v1')).toEqual({ key: 'k', value: 'v1', index: 4 });
    expect(follower.received).toEqual([{ method: 'PUT', url: '/kv/k', body: '{"value":"v1"}' }]);
    expect(leader.received).toEqual([{ method: 'PUT', url: '/kv/k', body: '{"value":"v1"}' }]);
  });

  it('encodes the key and asks for the consistency', async () => {
    const node = await fakeNode((_, response) => json(response, 200, { key: 'a/b c', value: 'x', index: 1 }));
    const client = new RaftingClient([node.url]);
    await client.get('a/b c');
    await client.get('a/b c', 'stale');
    expect(node.received.map((request) => request.url)).toEqual([
      '/kv/a%2Fb%20c?consistency=linearizable',
      '/kv/a%2Fb%20c?consistency=stale',
    ]);
  });

  it('resolves null for a missing key', async () => {
    const node = await fakeNode((_, response) =>
      json(response, 404, { error: { code: 'not_found', message: 'x' } }),
    );
    expect(await new RaftingClient([node.url]).get('nope')).toBeNull();
  });

  it('deletes', async () => {
    const node = await fakeNode((_, response) => json(response, 200, { key: 'k', deleted: false, index: 2 }));
    expect(await new RaftingClient([node.url]).delete('k')).toEqual({ key: 'k', deleted: false, index: 2 });
    expect(node.received[0]?.method).toBe('DELETE');
  });

  it('skips nodes that are down or know no leader', async () => {
    const down = await deadUrl();
    const leaderless = await fakeNode((_, response) => json(response, 503, noLeader, { 'retry-after': '1' }));
    const leader = await fakeNode((_, response) => json(response, 200, { key: 'k', value: 'v', index: 1 }));
    const client = new RaftingClient([down, leaderless.url, leader.url]);
    expect(await client.put('k', 'v')).toEqual({ key: 'k', value: 'v', index: 1 });
    expect(leaderless.received).toHaveLength(1);
  });

  it('keeps asking while no leader is known, within retryForMs', async () => {
    let calls = 0;
    const node = await fakeNode((_, response) => {
      calls += 1;
      if (calls < 3) json(response, 503, noLeader);
      else json(response, 200, { key: 'k', value: 'v', index: 1 });
    });
    const client = new RaftingClient([node.url], { retryForMs: 5000, retryDelayMs: 1 });
    expect(await client.put('k', 'v')).toEqual({ key: 'k', value: 'v', index: 1 });
    expect(calls).toBe(3);
  });

  it('gives up at once when no node is reachable, naming each', async () => {
    const [a, b] = [await deadUrl(), await deadUrl()];
    const client = new RaftingClient([a, b], { retryForMs: 60_000 });
    const error = await client.get('k').catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ClientError);
    expect(error).toMatchObject({
      code: 'unavailable',
      message: `no node could answer GET /kv/k?consistency=linearizable: ${a}: connection refused; ${b}: connection refused`,
    });
  });

  it('gives up when no leader is known once retryForMs is spent', async () => {
    const node = await fakeNode((_, response) => json(response, 503, noLeader));
    const client = new RaftingClient([node.url], { retryForMs: 20, retryDelayMs: 1 });
    await expect(client.delete('k')).rejects.toThrow(`${node.url}: 503 no leader is known at the moment`);
    expect(node.received.length).toBeGreaterThan(1);
  });

  it('reports the error of the server without asking another node', async () => {
    const node = await fakeNode((_, response) =>
      json(response, 504, { error: { code: 'timeout', message: 'not committed within 5000 ms' } }),
    );
    const other = await fakeNode((_, response) => json(response, 200, {}));
    const error = await new RaftingClient([node.url, other.url])
      .put('k', 'v')
      .catch((caught: unknown) => caught);
    expect(error).toMatchObject({ code: 'timeout', message: 'not committed within 5000 ms', status: 504 });
    expect(other.received).toHaveLength(0);
  });

  it('reports an answer that is not JSON', async () => {
    const node = await fakeNode((_, response) => {
      response.writeHead(500);
      response.end('oops');
    });
    await expect(new RaftingClient([node.url]).put('k', 'v')).rejects.toThrow('HTTP 500: oops');
  });

  it('reports no answer within the time budget', async () => {
    const node = await fakeNode(() => {});
    const client = new RaftingClient([node.url], { requestTimeoutMs: 50 });
    await expect(client.put('k', 'v')).rejects.toThrow(`${node.url}: no answer within 50 ms`);
  });

  it('asks every node for its status at once and reports those that are down', async () => {
    const status = {
      id: 'node1',
      role: 'leader',
      term: 2,
      leader: 'node1',
      commitIndex: 5,
      lastApplied: 5,
      lastLogIndex: 5,
      peers: [],
    };
    const up = await fakeNode((_, response) => json(response, 200, status));
    const hung = await fakeNode(() => {});
    const down = await deadUrl();
    const results = await new RaftingClient([up.url, hung.url, down]).status(100);
    expect(results).toEqual([
      { url: up.url, status },
      { url: hung.url, error: 'no answer within 100 ms' },
      { url: down, error: 'connection refused' },
    ]);
    expect(up.received).toEqual([{ method: 'GET', url: '/status', body: '' }]);
  });
});

describe('normalizeBaseUrl', () => {
  it.each([
    ['127.0.0.1:8081', 'http://127.0.0.1:8081'],
    ['http://127.0.0.1:8081/', 'http://127.0.0.1:8081'],
    ['https://example.com/rafting/', 'https://example.com/rafting'],
    ['[::1]:8081', 'http://[::1]:8081'],
  ])('%s → %s', (input, expected) => {
    expect(normalizeBaseUrl(input)).toBe(expected);
  });

  it('rejects other protocols', () => {
    expect(() => normalizeBaseUrl('ftp://example.com')).toThrow('expected an http:// or https:// URL');
  });
});
