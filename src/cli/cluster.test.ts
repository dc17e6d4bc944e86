import { describe, expect, it } from 'vitest';
import { formatClusterBanner, formatLogLine, formatPrefix } from './cluster.js';

describe('formatLogLine', () => {
  it('keeps the message of an info line', () => {
    const line =
      '{"level":30,"time":1732620000000,"pid":42,"hostname":"h","node":"node1","msg":"became leader at term 3"}';
    expect(formatLogLine(line)).toBe('became leader at term 3');
  });

  it('tags other levels and appends the extra fields', () => {
    const line = JSON.stringify({
      level: 40,
      time: 1,
      node: 'node2',
      msg: 'append rejected',
      peer: 'node3',
      index: 17,
      hint: { term: 2 },
    });
    expect(formatLogLine(line)).toBe('WARN append rejected peer=node3 index=17 hint={"term":2}');
  });

  it('shows only the message of an error', () => {
    const line = JSON.stringify({
      level: 60,
      node: 'node1',
      msg: 'failed to start',
      err: { type: 'Error', message: 'listen EADDRINUSE', stack: 'Error: listen EADDRINUSE\n    at ...' },
    });
    expect(formatLogLine(line)).toBe('FATAL failed to start err=listen EADDRINUSE');
  });

  it('shortens long fields', () => {
    const formatted = formatLogLine(JSON.stringify({ level: 20, msg: 'sent', entries: 'x'.repeat(500) }));
    expect(formatted).toBe(`DEBUG sent entries=${'x'.repeat(119)}…`);
  });

  it.each(['plain text from the node', '{"not":"pino"}', '[1,2]', '42', '{"level":30,"msg":"truncated', ''])(
    'leaves %j as it is',
    (line) => {
      expect(formatLogLine(line)).toBe(line);
    },
  );
});

describe('formatPrefix', () => {
  it('pads the node id and colors it when asked', () => {
    expect(formatPrefix('n1', 5)).toBe('n1    | ');
    expect(formatPrefix('node1', 5, 36)).toBe('\u001b[36mnode1\u001b[0m | ');
  });
});

describe('formatClusterBanner', () => {
  it('shows the leader, every node and commands to try', () => {
    const banner = formatClusterBanner({
      clusterId: 'abc123',
      leader: { id: 'node2', term: 3 },
      nodes: [
        { id: 'node1', url: 'http://127.0.0.1:8081' },
        { id: 'node2', url: 'http://127.0.0.1:8082' },
        { id: 'node3', url: 'http://127.0.0.1:8083' },
      ],
      statusCommand: 'bin/rafting status',
    });
    const lines = banner.trimEnd().split('\n');
    expect(lines.slice(1, -1).map((line) => line.slice(2, -2).trimEnd())).toEqual([
      'Rafting cluster abc123 is up: node2 leads at term 3.',
      '',
      '  node1  http://127.0.0.1:8081',
      '  node2  http://127.0.0.1:8082  (leader)',
      '  node3  http://127.0.0.1:8083',
      '',
      'Try:',
      `  curl -X POST http://127.0.0.1:8082/command -H 'Content-Type: application/json' -d '{"key":"a","value":"1"}'`,
      '  curl http://127.0.0.1:8081/kv/a?consistency=stale',
      '  curl http://127.0.0.1:8081/kv/a    # any node answers; a follower asks the leader first',
      '  bin/rafting status',
      '',
      'Ctrl-C stops every node.',
    ]);
    // Every line of the box has the same width.
    expect(new Set(lines.map((line) => line.length)).size).toBe(1);
    expect(lines[0]).toMatch(/^┌─+┐$/);
    expect(lines.at(-1)).toMatch(/^└─+┘$/);
  });

  it('uses the leader for the stale read of a one-node cluster', () => {
    const banner = formatClusterBanner({
      clusterId: 'x',
      leader: { id: 'solo', term: 1 },
      nodes: [{ id: 'solo', url: 'http://127.0.0.1:9000' }],
      statusCommand: 'bin/rafting status -c solo.yaml',
    });
    expect(banner).toContain('curl http://127.0.0.1:9000/kv/a?consistency=stale');
    expect(banner).toContain('bin/rafting status -c solo.yaml');
  });
});
