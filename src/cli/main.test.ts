import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CliDeps, NodeHandle, StartNodeOptions } from './deps.js';
import { main } from './main.js';
import { usage } from './usage.js';

// main() runs in-process with captured output and fakes for the node, the network and signals.

interface Harness {
  readonly deps: CliDeps;
  /** Everything written to standard output and error so far. */
  readonly out: () => string;
  readonly err: () => string;
  /** The JSON log lines `run` wrote. */
  readonly logs: () => Record<string, unknown>[];
  /** Delivers a signal to the handlers registered with onShutdownSignal. */
  readonly signal: (signal: NodeJS.Signals) => void;
  /** How many signal handlers are registered. */
  readonly listeners: () => number;
}

function harness(overrides: Partial<CliDeps> = {}): Harness {
  let out = '';
  let err = '';
  const logLines: string[] = [];
  const handlers = new Set<(signal: NodeJS.Signals) => void>();
  const deps: CliDeps = {
    out: (text) => void (out += text),
    err: (text) => void (err += text),
    isTTY: false,
    fetch: () => Promise.reject(new TypeError('fetch failed', { cause: { code: 'ECONNREFUSED' } })),
    startNode: () => Promise.reject(new Error('startNode is not faked in this test')),
    onShutdownSignal: (handler) => {
      handlers.add(handler);
      return () => void handlers.delete(handler);
    },
    logDestination: { write: (line: string) => void logLines.push(line) },
    nodeProcess: () => {
      throw new Error('nodeProcess is not faked in this test');
    },
    ...overrides,
  };
  return {
    deps,
    out: () => out,
    err: () => err,
    logs: () => logLines.map((line) => JSON.parse(line) as Record<string, unknown>),
    signal: (signal) => {
      for (const handler of [...handlers]) handler(signal);
    },
    listeners: () => handlers.size,
  };
}

/** A fetch that answers every request with `respond`, recording the requests. */
function fakeFetch(
  respond: (request: { url: string; method: string; body: string | undefined }) => Response,
) {
  const requests: { url: string; method: string; body: string | undefined }[] = [];
  const fetch = (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const request = {
      url: String(input),
      method: init?.method ?? 'GET',
      body: typeof init?.body === 'string' ? init.body : undefined,
    };
    requests.push(request);
    return Promise.resolve(respond(request));
  };
  return { fetch: fetch as typeof globalThis.fetch, requests };
}

function jsonResponse(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', ...headers },
  });
}

const config = 'config/cluster_config.yaml';

/** Runs main(argv) and returns the exit status with the captured output. */
async function run(argv: string[], overrides: Partial<CliDeps> = {}) {
  const h = harness(overrides);
  const status = await main(argv, h.deps);
  return { status, out: h.out(), err: h.err() };
}

/** A started fake node; `closed` tells whether close() was called. */
function fakeNode(close: () => Promise<void> = () => Promise.resolve()) {
  const started: StartNodeOptions[] = [];
  let closed = 0;
  const startNode = (options: StartNodeOptions): Promise<NodeHandle> => {
    started.push(options);
    options.logger.info('fake node started');
    return Promise.resolve({
      webUrl: 'http://127.0.0.1:8081',
      close: () => {
        closed += 1;
        return close();
      },
    });
  };
  return { startNode, started, closed: () => closed };
}

/** Waits, a millisecond at a time, for `condition` to hold (the config is read from disk first). */
async function until(condition: () => boolean): Promise<void> {
  for (let waited = 0; !condition(); waited++) {
    if (waited > 5000) throw new Error('the condition did not hold within 5 s');
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rafting-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('help', () => {
  it('shows the commands with no argument, --help, -h and help', async () => {
    for (const argv of [[], ['--help'], ['-h'], ['help']]) {
      expect(await run(argv)).toEqual({ status: 0, out: usage.main, err: '' });
    }
  });

  it.each(['run', 'cluster', 'status', 'put', 'get', 'delete'] as const)(
    'shows the help of %s',
    async (command) => {
      expect(await run([command, '--help'])).toEqual({ status: 0, out: usage[command], err: '' });
      expect(await run([command, '-h'])).toEqual({ status: 0, out: usage[command], err: '' });
      expect(await run(['help', command])).toEqual({ status: 0, out: usage[command], err: '' });
    },
  );

  it('shows the help of run for a node command line with --help', async () => {
    expect(await run(['-n', 'node1', '--help'])).toEqual({ status: 0, out: usage.run, err: '' });
  });
});

describe('command line errors exit 2 and name the problem', () => {
  it.each([
    [['frobnicate'], 'rafting: unknown command "frobnicate"; the commands are run, cluster, status'],
    [['help', 'frobnicate'], 'rafting help: unknown command "frobnicate"'],
    [['-n', 'node1', '--verbose'], 'rafting run: unknown option "--verbose" (see rafting run --help)'],
    [['run', '-x'], 'rafting run: unknown option "-x"'],
    [['run', '-n'], 'rafting run: option -n/--node needs a value'],
    [['run'], 'rafting run: -n/--node ID is required'],
    [['run', '-n', 'node1', 'extra'], 'rafting run: unexpected argument "extra"'],
    [
      ['run', '-n', 'node1', '--log-level', 'loud'],
      'rafting run: unknown --log-level "loud"; use one of fatal',
    ],
    [['run', '-n', 'node1', '--data-dir='], 'rafting run: --data-dir needs a directory'],
    [['cluster', '--nodes', '3'], 'rafting cluster: unknown option "--nodes"'],
    [['cluster', 'now'], 'rafting cluster: unexpected argument "now"'],
    [['status', '--all'], 'rafting status: unknown option "--all"'],
    [['put', 'a'], 'rafting put: missing VALUE (usage: rafting put KEY VALUE)'],
    [['put'], 'rafting put: missing KEY VALUE'],
    [['put', 'a', 'b', 'c'], 'rafting put: unexpected argument "c"'],
    [['put', '', 'b'], 'rafting put: KEY must not be empty'],
    [['get'], 'rafting get: missing KEY'],
    [['get', 'a', '--stale=yes'], 'rafting get: option --stale does not take a value'],
    [['delete', 'a', '--stale'], 'rafting delete: unknown option "--stale"'],
    [
      ['get', 'a', '--url', 'ftp://x'],
      'rafting get: --url: expected a URL like http://127.0.0.1:8081, got "ftp://x"',
    ],
  ])('%j', async (argv, message) => {
    const result = await run(argv);
    expect(result.status).toBe(2);
    expect(result.out).toBe('');
    expect(result.err).toContain(message);
    expect(result.err.trimEnd().split('\n')).toHaveLength(1);
  });
});

describe('config errors exit 2 with one line naming the file and the key', () => {
  it('reports a missing file', async () => {
    const result = await run(['-n', 'node1', '-c', join(dir, 'missing.yaml')]);
    expect(result).toEqual({
      status: 2,
      out: '',
      err: `rafting: ${join(dir, 'missing.yaml')}: cannot read the config file: no such file\n`,
    });
  });

  it('reports a bad key', async () => {
    const path = join(dir, 'typo.yaml');
    await writeFile(path, 'tick_intervall_ms: 10\ncluster: []\n');
    for (const argv of [
      ['-n', 'node1', '-c', path],
      ['cluster', '-c', path],
      ['status', '-c', path],
      ['put', 'a', '1', '-c', path],
    ]) {
      expect(await run(argv)).toEqual({
        status: 2,
        out: '',
        err: `rafting: ${path}:1: unknown key "tick_intervall_ms" (did you mean "tick_interval_ms"?)\n`,
      });
    }
  });

  it('reports an unknown node id with the ids the config lists', async () => {
    expect(await run(['-n', 'node9', '-c', config])).toEqual({
      status: 2,
      out: '',
      err: 'rafting: config/cluster_config.yaml: unknown node id "node9"; the config lists node1, node2, node3\n',
    });
  });
});

describe('run', () => {
  it('runs the node until a signal, then closes it and exits 0', async () => {
    const node = fakeNode();
    const h = harness({ startNode: node.startNode });
    const status = main(['-n', 'node2', '-c', config], h.deps);
    await until(() => node.started.length === 1);
    expect(node.started).toHaveLength(1);
    expect(node.started[0]?.nodeId).toBe('node2');
    expect(node.started[0]?.config.nodes.map((n) => n.id)).toEqual(['node1', 'node2', 'node3']);
    expect(node.started[0]).not.toHaveProperty('dataDir');
    expect(node.closed()).toBe(0);
    h.signal('SIGTERM');
    expect(await status).toBe(0);
    expect(node.closed()).toBe(1);
    expect(h.listeners()).toBe(0);
    expect(h.err()).toBe('');
  });

  it('logs JSON lines that carry the node id', async () => {
    const node = fakeNode();
    const h = harness({ startNode: node.startNode });
    const status = main(['run', '--node', 'node1', '--config', config, '--log-level', 'debug'], h.deps);
    await until(() => node.started.length === 1);
    h.signal('SIGINT');
    expect(await status).toBe(0);
    const logs = h.logs();
    expect(logs.map((line) => line['msg'])).toEqual([
      'fake node started',
      'received SIGINT, shutting down',
      'stopped',
    ]);
    for (const line of logs) expect(line['node']).toBe('node1');
  });

  it('passes --data-dir, else the data_dir of the config, to the node', async () => {
    const path = join(dir, 'data-dir.yaml');
    await writeFile(
      path,
      'cluster:\n  - { node_id: a, grpc_address: "127.0.0.1:1", web_address: "127.0.0.1:2", data_dir: ./data/a }\n',
    );
    for (const [argv, expected] of [
      [['-n', 'a', '-c', path], './data/a'],
      [['-n', 'a', '-c', path, '--data-dir', '/var/lib/a'], '/var/lib/a'],
    ] as const) {
      const node = fakeNode();
      const h = harness({ startNode: node.startNode });
      const status = main([...argv], h.deps);
      await until(() => node.started.length === 1);
      h.signal('SIGTERM');
      expect(await status).toBe(0);
      expect(node.started[0]?.dataDir).toBe(expected);
    }
  });

  it('closes a node that got a signal while it was starting', async () => {
    const node = fakeNode();
    const h: Harness = harness({
      startNode: (options) => {
        h.signal('SIGTERM');
        return node.startNode(options);
      },
    });
    expect(await main(['-n', 'node1', '-c', config], h.deps)).toBe(0);
    expect(node.closed()).toBe(1);
  });

  it('ignores further signals while the node closes', async () => {
    let finishClose = () => {};
    const node = fakeNode(() => new Promise<void>((resolve) => (finishClose = resolve)));
    const h = harness({ startNode: node.startNode });
    const status = main(['-n', 'node1', '-c', config], h.deps);
    await until(() => node.started.length === 1);
    h.signal('SIGINT');
    await until(() => node.closed() === 1);
    h.signal('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 5));
    expect(node.closed()).toBe(1);
    finishClose();
    expect(await status).toBe(0);
  });

  it('exits 1 with one line when the node fails to start', async () => {
    const h = harness({
      startNode: () => Promise.reject(new Error('listen EADDRINUSE: address already in use')),
    });
    expect(await main(['-n', 'node3', '-c', config], h.deps)).toBe(1);
    expect(h.err()).toBe('rafting: node3 failed to start: listen EADDRINUSE: address already in use\n');
    expect(h.logs()[0]).toMatchObject({ node: 'node3', msg: 'failed to start', level: 60 });
    expect(h.listeners()).toBe(0);
  });

  it('exits 1 when the node fails to close', async () => {
    const node = fakeNode(() => Promise.reject(new Error('disk on fire')));
    const h = harness({ startNode: node.startNode });
    const status = main(['-n', 'node1', '-c', config], h.deps);
    await until(() => node.started.length === 1);
    h.signal('SIGTERM');
    expect(await status).toBe(1);
    expect(h.logs().at(-1)).toMatchObject({
      msg: 'failed to shut down cleanly',
      err: { message: 'disk on fire' },
    });
  });
});

describe('client commands', () => {
  it('put sends the value to the first node and prints the result', async () => {
    const { fetch, requests } = fakeFetch(() => jsonResponse(200, { key: 'a b', value: 'hello', index: 7 }));
    expect(await run(['put', 'a b', 'hello', '-c', config], { fetch })).toEqual({
      status: 0,
      out: '{"key":"a b","value":"hello","index":7}\n',
      err: '',
    });
    expect(requests).toEqual([
      { url: 'http://127.0.0.1:8081/kv/a%20b', method: 'PUT', body: '{"value":"hello"}' },
    ]);
  });

  it('get asks for the consistency given and exits 1 for a missing key', async () => {
    const { fetch, requests } = fakeFetch(() =>
      jsonResponse(404, { error: { code: 'not_found', message: 'no' } }),
    );
    expect(await run(['get', 'k', '--stale', '--url', '127.0.0.1:9000'], { fetch })).toEqual({
      status: 1,
      out: '',
      err: 'rafting: key "k" not found\n',
    });
    expect(requests.map((request) => request.url)).toEqual(['http://127.0.0.1:9000/kv/k?consistency=stale']);
  });

  it('delete prints the result', async () => {
    const { fetch, requests } = fakeFetch(() => jsonResponse(200, { key: 'k', deleted: true, index: 9 }));
    const result = await run(['delete', 'k', '--url', 'http://10.0.0.1:80/', '--url', 'http://10.0.0.2:80'], {
      fetch,
    });
    expect(result).toEqual({ status: 0, out: '{"key":"k","deleted":true,"index":9}\n', err: '' });
    expect(requests).toEqual([{ url: 'http://10.0.0.1/kv/k', method: 'DELETE', body: undefined }]);
  });

  it('prints the error of the server and exits 1', async () => {
    const { fetch } = fakeFetch(() =>
      jsonResponse(413, { error: { code: 'too_large', message: 'the value is longer than 1048576 bytes' } }),
    );
    expect(await run(['put', 'a', 'b'], { fetch })).toEqual({
      status: 1,
      out: '',
      err: 'rafting: the value is longer than 1048576 bytes\n',
    });
  });

  it('names every node it could not reach', async () => {
    const result = await run(['get', 'a']);
    expect(result.status).toBe(1);
    expect(result.err).toBe(
      'rafting: no node could answer GET /kv/a?consistency=linearizable: http://127.0.0.1:8081: connection refused; ' +
        'http://127.0.0.1:8082: connection refused; http://127.0.0.1:8083: connection refused\n',
    );
  });

  it('status prints a table with the nodes that are down', async () => {
    const { fetch } = fakeFetch(({ url }) => {
      if (url.includes(':8083')) throw new TypeError('fetch failed');
      const id = url.includes(':8081') ? 'node1' : 'node2';
      return jsonResponse(200, {
        id,
        role: id === 'node1' ? 'leader' : 'follower',
        term: 12,
        leader: 'node1',
        commitIndex: 104,
        lastApplied: id === 'node1' ? 104 : 99,
        lastLogIndex: 104,
        peers: [],
      });
    });
    expect(await run(['status'], { fetch })).toEqual({
      status: 0,
      err: '',
      out: [
        'NODE   ROLE      TERM  LEADER  COMMIT  APPLIED  ADDRESS',
        'node1  leader    12    node1   104     104      127.0.0.1:8081',
        'node2  follower  12    node1   104     99       127.0.0.1:8082',
        'node3  down      -     -       -       -        127.0.0.1:8083',
        '',
      ].join('\n'),
    });
  });
});

describe('cluster', () => {
  /** A stand-in for `rafting run`: logs like pino, then runs until SIGTERM (or exits at once with `exitCode`). */
  function fakeNodeProcess(exitCode?: number): CliDeps['nodeProcess'] {
    // The SIGTERM handler goes in before the first line is printed: the test signals once it has seen the lines.
    const script = `
      const id = process.argv[1];
      const keepAlive = setInterval(() => {}, 1000);
      process.on('SIGTERM', () => { console.log('bye'); clearInterval(keepAlive); });
      console.log(JSON.stringify({ level: 30, time: Date.now(), node: id, msg: 'became follower at term 1' }));
      console.error('plain stderr from ' + id);
      if (${exitCode ?? 'undefined'} !== undefined) process.exit(${exitCode ?? 0});
    `;
    return ({ nodeId }) => ({ command: process.execPath, args: ['-e', script, nodeId] });
  }

  const leaderStatus = fakeFetch(({ url }) => {
    const id = `node${new URL(url).port.slice(-1)}`; // 8081 → node1
    return jsonResponse(200, {
      id,
      role: id === 'node2' ? 'leader' : 'follower',
      term: 1,
      leader: 'node2',
      commitIndex: 1,
      lastApplied: 1,
      lastLogIndex: 1,
      peers: [],
    });
  }).fetch;

  it('runs every node with prefixed output, announces the leader and stops the nodes on a signal', async () => {
    const h = harness({ nodeProcess: fakeNodeProcess(), fetch: leaderStatus });
    const status = main(['cluster'], h.deps);
    await until(() => h.out().includes('Ctrl-C stops every node.'));
    expect(h.out()).toContain('node2 leads at term 1.');
    // The banner may come before a slow child's first line: wait for each line instead of assuming an order.
    const ids = ['node1', 'node2', 'node3'];
    await until(() =>
      ids.every(
        (id) =>
          h.out().includes(`${id} | became follower at term 1\n`) &&
          h.err().includes(`${id} | plain stderr from ${id}\n`),
      ),
    );
    h.signal('SIGINT');
    expect(await status).toBe(0);
    expect(h.out()).toContain('stopping 3 node(s)');
    for (const id of ['node1', 'node2', 'node3']) {
      expect(h.out()).toContain(`${id} | bye\n`);
      expect(h.out()).toContain(`${id} | stopped (exit code 0)\n`);
    }
    expect(h.err()).not.toContain('unexpectedly');
    expect(h.listeners()).toBe(0);
  });

  it('reports nodes that exit on their own and does not restart them', async () => {
    const h = harness({ nodeProcess: fakeNodeProcess(3) });
    expect(await main(['cluster', '-c', config], h.deps)).toBe(1);
    for (const id of ['node1', 'node2', 'node3']) {
      expect(h.err()).toContain(`${id} | exited unexpectedly (exit code 3); not restarting it\n`);
    }
    expect(h.out()).not.toContain('Ctrl-C stops every node.');
  });
});
