import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  configDefaults,
  electionTicks,
  heartbeatTicks,
  loadClusterConfig,
  nodeConfig,
  parseClusterConfig,
} from './load.js';

const threeNodes = `cluster:
  - node_id: node1
    grpc_address: 127.0.0.1:50051
    web_address: 127.0.0.1:8081
    peers: [node2, node3]
  - node_id: node2
    grpc_address: 127.0.0.1:50052
    web_address: 127.0.0.1:8082
    peers: [node1, node3]
  - node_id: node3
    grpc_address: 127.0.0.1:50053
    web_address: 127.0.0.1:8083
    peers: [node1, node2]
`;

/** The message of the ConfigError that parsing `yaml` throws. */
function configError(yaml: string): ConfigError {
  try {
    parseClusterConfig(yaml, 'test.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

/** Replaces the first occurrence of `from` in the three-node config. */
function edited(from: string, to: string): string {
  expect(threeNodes).toContain(from);
  return threeNodes.replace(from, to);
}

describe('parseClusterConfig', () => {
  it('fills in the defaults for every optional key', () => {
    const config = parseClusterConfig(threeNodes, 'test.yaml');
    expect(config).toMatchObject({
      tickIntervalMs: 10,
      electionTimeoutMinMs: 150,
      electionTimeoutMaxMs: 300,
      heartbeatIntervalMs: 50,
      maxKeyBytes: 1024,
      maxValueBytes: 1048576,
      requestTimeoutMs: 5000,
    });
    expect(config).toMatchObject(configDefaults);
    expect(config.nodes).toEqual([
      {
        id: 'node1',
        grpcAddress: '127.0.0.1:50051',
        webAddress: '127.0.0.1:8081',
        peers: ['node2', 'node3'],
      },
      {
        id: 'node2',
        grpcAddress: '127.0.0.1:50052',
        webAddress: '127.0.0.1:8082',
        peers: ['node1', 'node3'],
      },
      {
        id: 'node3',
        grpcAddress: '127.0.0.1:50053',
        webAddress: '127.0.0.1:8083',
        peers: ['node1', 'node2'],
      },
    ]);
  });

  it('reads every key that is given', () => {
    const yaml = `tick_interval_ms: 5
election_timeout_min_ms: 100
election_timeout_max_ms: 200
heartbeat_interval_ms: 20
cluster_id: test-cluster
max_key_bytes: 64
max_value_bytes: 4096
request_timeout_ms: 2000
${threeNodes.replace('    peers: [node2, node3]\n', '    peers: [node2, node3]\n    data_dir: ./data/node1\n')}`;
    const config = parseClusterConfig(yaml, 'test.yaml');
    expect(config).toMatchObject({
      clusterId: 'test-cluster',
      tickIntervalMs: 5,
      electionTimeoutMinMs: 100,
      electionTimeoutMaxMs: 200,
      heartbeatIntervalMs: 20,
      maxKeyBytes: 64,
      maxValueBytes: 4096,
      requestTimeoutMs: 2000,
    });
    expect(config.nodes[0]?.dataDir).toBe('./data/node1');
    expect(config.nodes[1]).not.toHaveProperty('dataDir');
  });

  it('derives a stable cluster id from the node ids and gRPC addresses', () => {
    const config = parseClusterConfig(threeNodes, 'test.yaml');
    expect(config.clusterId).toMatch(/^[0-9a-f]{16}$/);
    // The order of the nodes and their web addresses do not matter.
    const reordered = `cluster:\n${threeNodes.split('  - ').slice(1).reverse().join('  - ').replace(/^/, '  - ')}`;
    expect(parseClusterConfig(reordered, 'test.yaml').nodes[0]?.id).toBe('node3');
    expect(parseClusterConfig(reordered, 'test.yaml').clusterId).toBe(config.clusterId);
    const otherWeb = edited('127.0.0.1:8081', '127.0.0.1:9081');
    expect(parseClusterConfig(otherWeb, 'test.yaml').clusterId).toBe(config.clusterId);
    const otherGrpc = edited('127.0.0.1:50051', '127.0.0.1:60051');
    expect(parseClusterConfig(otherGrpc, 'test.yaml').clusterId).not.toBe(config.clusterId);
  });

  it('makes every other node a peer when peers is left out', () => {
    const yaml = threeNodes.replace(/ {4}peers: .*\n/g, '');
    const config = parseClusterConfig(yaml, 'test.yaml');
    expect(config.nodes.map((node) => node.peers)).toEqual([
      ['node2', 'node3'],
      ['node1', 'node3'],
      ['node1', 'node2'],
    ]);
  });

  it('reads per-node dial addresses (a proxy between two nodes) and checks them', () => {
    const yaml = edited(
      '    peers: [node2, node3]\n',
      '    peers: [node2, node3]\n    dial: { node2: 127.0.0.1:60012 }\n',
    );
    expect(parseClusterConfig(yaml, 'test.yaml').nodes[0]?.dial).toEqual({ node2: '127.0.0.1:60012' });
    const web = edited(
      '    peers: [node2, node3]\n',
      '    peers: [node2, node3]\n    web_dial: { node3: 127.0.0.1:60013 }\n',
    );
    expect(parseClusterConfig(web, 'test.yaml').nodes[0]?.webDial).toEqual({ node3: '127.0.0.1:60013' });
    const self = edited(
      '    peers: [node2, node3]\n',
      '    peers: [node2, node3]\n    dial: { node1: 127.0.0.1:1 }\n',
    );
    expect(configError(self).message).toContain('cluster[0].dial.node1');
    const bad = edited(
      '    peers: [node2, node3]\n',
      '    peers: [node2, node3]\n    dial: { node2: nowhere }\n',
    );
    expect(configError(bad).message).toContain('expected "host:port"');
  });

  it('accepts a single-node cluster, host names and IPv6 addresses', () => {
    const config = parseClusterConfig(
      'cluster:\n  - node_id: solo\n    grpc_address: "[::1]:50051"\n    web_address: localhost:8081\n',
      'test.yaml',
    );
    expect(config.nodes).toEqual([
      { id: 'solo', grpcAddress: '[::1]:50051', webAddress: 'localhost:8081', peers: [] },
    ]);
  });

  it('names the file, the line and the key of a bad value', () => {
    expect(configError(edited('127.0.0.1:50052', 'abc')).message).toBe(
      'test.yaml:7: cluster[1].grpc_address: expected "host:port", got "abc"',
    );
    expect(configError(edited('127.0.0.1:50052', 'abc')).key).toBe('cluster[1].grpc_address');
  });

  it('reports YAML syntax errors with their line', () => {
    const message = configError('tick_interval_ms: 10\ncluster: [\n  - node_id: a\n').message;
    expect(message).toMatch(/^test\.yaml:\d+:\d+: YAML syntax error: /);
    expect(configError('a: 1\na: 2\n').message).toBe(
      'test.yaml:2:1: YAML syntax error: Map keys must be unique',
    );
  });

  it.each([
    ['an empty file', '', 'the file is empty'],
    ['a comment only', '# nothing\n', 'the file is empty'],
    ['a list at the top', '- a\n- b\n', 'the file must be a mapping'],
    ['a scalar at the top', 'hello\n', 'the file must be a mapping'],
  ])('rejects %s', (_, yaml, fragment) => {
    const message = configError(yaml).message;
    expect(message).toMatch(/^test\.yaml(:\d+)?: /);
    expect(message).toContain(fragment);
  });

  it('rejects unknown keys and suggests the near miss', () => {
    const top = configError(`tick_intervall_ms: 10\n${threeNodes}`);
    expect(top.message).toBe(
      'test.yaml:1: unknown key "tick_intervall_ms" (did you mean "tick_interval_ms"?)',
    );
    expect(top.key).toBe('tick_intervall_ms');
    const nested = configError(edited('    peers: [node1, node3]', '    peer: [node1, node3]'));
    expect(nested.message).toBe('test.yaml:9: unknown key "peer" (did you mean "peers"?)');
    expect(nested.key).toBe('cluster[1].peer');
    const far = configError(`colour: blue\n${threeNodes}`);
    expect(far.message).toContain('unknown key "colour"; known keys: cluster_id, tick_interval_ms');
  });

  it.each([
    ['tick_interval_ms', '0'],
    ['election_timeout_min_ms', '-5'],
    ['election_timeout_max_ms', '2.5'],
    ['heartbeat_interval_ms', '"50"'],
    ['max_key_bytes', 'true'],
    ['max_value_bytes', '[1]'],
    ['request_timeout_ms', '{ a: 1 }'],
  ])('requires %s to be a positive integer (got %s)', (key, value) => {
    const message = configError(`${key}: ${value}\n${threeNodes}`).message;
    expect(message).toMatch(new RegExp(`^test\\.yaml:1: ${key}: expected a positive integer, got `));
  });

  it('rejects durations that setTimeout cannot wait', () => {
    const message = configError(`request_timeout_ms: 4294967296\n${threeNodes}`).message;
    expect(message).toBe('test.yaml:1: request_timeout_ms: must be at most 2147483647, got 4294967296');
  });

  it('requires the election timeout range to be ordered', () => {
    const both = configError(`election_timeout_min_ms: 300\nelection_timeout_max_ms: 300\n${threeNodes}`);
    expect(both.message).toBe(
      'test.yaml:1: election_timeout_min_ms: must be less than election_timeout_max_ms (300), got 300',
    );
    // Only the maximum is written: blame it, not the default minimum.
    const maxOnly = configError(`election_timeout_max_ms: 100\n${threeNodes}`);
    expect(maxOnly.message).toBe(
      'test.yaml:1: election_timeout_max_ms: must be greater than election_timeout_min_ms (150), got 100',
    );
  });

  it('requires the heartbeat to be shorter than the election timeout', () => {
    const message = configError(`heartbeat_interval_ms: 150\n${threeNodes}`).message;
    expect(message).toBe(
      'test.yaml:1: heartbeat_interval_ms: must be less than election_timeout_min_ms (150), got 150',
    );
  });

  it('requires the tick to be no longer than the heartbeat', () => {
    const message = configError(`tick_interval_ms: 60\n${threeNodes}`).message;
    expect(message).toBe('test.yaml:1: tick_interval_ms: must be at most heartbeat_interval_ms (50), got 60');
  });

  it('requires the timeouts to stay apart once rounded up to ticks', () => {
    const sameTicks = configError(
      `tick_interval_ms: 50\nelection_timeout_min_ms: 160\nelection_timeout_max_ms: 190\n${threeNodes}`,
    );
    expect(sameTicks.key).toBe('election_timeout_max_ms');
    expect(sameTicks.message).toContain('both round up to 4 ticks');
    const heartbeat = configError(
      `tick_interval_ms: 40\nheartbeat_interval_ms: 45\nelection_timeout_min_ms: 70\n${threeNodes}`,
    );
    expect(heartbeat.key).toBe('heartbeat_interval_ms');
    expect(heartbeat.message).toContain('heartbeat_interval_ms rounds up to 2 ticks');
  });

  it.each([
    ['missing', 'tick_interval_ms: 10\n', 'cluster: missing'],
    ['empty', 'cluster: []\n', 'cluster: the cluster has no nodes'],
    ['null', 'cluster:\n', 'cluster: expected a list of nodes, got nothing'],
    ['a mapping', 'cluster: { node1: 1 }\n', 'cluster: expected a list of nodes, got a mapping'],
  ])('rejects a %s cluster list', (_, yaml, fragment) => {
    expect(configError(yaml).message).toContain(fragment);
  });

  it('rejects a node that is not a mapping', () => {
    expect(configError('cluster:\n  - node1\n').message).toBe(
      'test.yaml:2: cluster[0] must be a mapping of keys to values, got "node1"',
    );
  });

  it.each([
    [
      'node_id',
      '  - node_id: node2\n    grpc_address:',
      '  - grpc_address:',
      'test.yaml:6: cluster[1].node_id: missing',
    ],
    ['node_id', 'node_id: node2', 'node_id: 2', 'cluster[1].node_id: expected an id'],
    ['node_id', 'node_id: node2', 'node_id: "node 2"', 'cluster[1].node_id: expected an id'],
    ['grpc_address', '    grpc_address: 127.0.0.1:50052\n', '', 'cluster[1].grpc_address: missing'],
    [
      'grpc_address',
      '127.0.0.1:50052',
      '127.0.0.1',
      'cluster[1].grpc_address: expected "host:port", got "127.0.0.1"',
    ],
    [
      'grpc_address',
      '127.0.0.1:50052',
      '127.0.0.1:70000',
      'cluster[1].grpc_address: the port must be 1 to 65535',
    ],
    [
      'grpc_address',
      '127.0.0.1:50052',
      '127.0.0.1:0',
      'cluster[1].grpc_address: the port must be 1 to 65535',
    ],
    ['web_address', '127.0.0.1:8082', '8082', 'cluster[1].web_address: expected "host:port", got 8082'],
    [
      'web_address',
      '127.0.0.1:8082',
      'http://127.0.0.1:8082',
      'cluster[1].web_address: expected "host:port"',
    ],
    [
      'data_dir',
      '    peers: [node1, node3]\n',
      '    peers: [node1, node3]\n    data_dir: 7\n',
      'cluster[1].data_dir',
    ],
    ['peers', 'peers: [node1, node3]', 'peers: node1', 'cluster[1].peers: expected a list of node ids'],
    ['peers', 'peers: [node1, node3]', 'peers: [node1, 3]', 'cluster[1].peers[1]: expected a node id, got 3'],
  ])('checks %s: %j → %j', (_, from, to, fragment) => {
    const error = configError(edited(from, to));
    expect(error.message).toMatch(/^test\.yaml(:\d+)?: /);
    expect(error.message).toContain(fragment);
  });

  it('rejects duplicate node ids', () => {
    expect(configError(edited('node_id: node2', 'node_id: node1')).message).toBe(
      'test.yaml:6: cluster[1].node_id: duplicate node id "node1" (also cluster[0])',
    );
  });

  it('rejects two listeners on one address, whatever the spelling of loopback', () => {
    expect(configError(edited('127.0.0.1:8082', '127.0.0.1:8081')).message).toBe(
      'test.yaml:8: cluster[1].web_address: "127.0.0.1:8081" is already used by cluster[0].web_address (node1)',
    );
    expect(configError(edited('127.0.0.1:8082', 'LOCALHOST:50051')).message).toContain(
      'cluster[1].web_address: "LOCALHOST:50051" is already used by cluster[0].grpc_address (node1)',
    );
    // A node's own two addresses collide too.
    expect(configError(edited('127.0.0.1:8081', '127.0.0.1:50051')).message).toContain(
      'cluster[0].web_address: "127.0.0.1:50051" is already used by cluster[0].grpc_address (node1)',
    );
    // The same port on two hosts is fine.
    expect(() => parseClusterConfig(edited('127.0.0.1:8082', '10.0.0.2:8081'), 'test.yaml')).not.toThrow();
  });

  it('rejects peers that are not in the cluster, the node itself, or twice', () => {
    expect(configError(edited('peers: [node1, node3]', 'peers: [node1, node4]')).message).toBe(
      'test.yaml:9: cluster[1].peers[1]: unknown node "node4"; the cluster lists node1, node2, node3',
    );
    expect(configError(edited('peers: [node1, node3]', 'peers: [node2]')).message).toBe(
      'test.yaml:9: cluster[1].peers[0]: a node is not its own peer ("node2")',
    );
    expect(configError(edited('peers: [node1, node3]', 'peers: [node1, node1]')).message).toBe(
      'test.yaml:9: cluster[1].peers[1]: "node1" is listed twice',
    );
  });

  it('checks cluster_id', () => {
    expect(configError(`cluster_id: "my cluster"\n${threeNodes}`).message).toMatch(
      /^test\.yaml:1: cluster_id: expected an id \(.*\), got "my cluster"$/,
    );
  });
});

describe('loadClusterConfig', () => {
  it('parses the shipped config/cluster_config.yaml', async () => {
    const config = await loadClusterConfig('config/cluster_config.yaml');
    expect(config.nodes.map((node) => [node.id, node.grpcAddress, node.webAddress])).toEqual([
      ['node1', '127.0.0.1:50051', '127.0.0.1:8081'],
      ['node2', '127.0.0.1:50052', '127.0.0.1:8082'],
      ['node3', '127.0.0.1:50053', '127.0.0.1:8083'],
    ]);
    expect(config).toMatchObject(configDefaults);
  });

  it('names the file in its errors', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'rafting-config-'));
    try {
      const path = join(dir, 'bad.yaml');
      await writeFile(path, `tick_interval_ms: fast\n${threeNodes}`);
      await expect(loadClusterConfig(path)).rejects.toThrow(
        `${path}:1: tick_interval_ms: expected a positive integer, got "fast"`,
      );
      await expect(loadClusterConfig(join(dir, 'missing.yaml'))).rejects.toThrow(
        `${join(dir, 'missing.yaml')}: cannot read the config file: no such file`,
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('nodeConfig', () => {
  const config = parseClusterConfig(threeNodes, 'test.yaml');

  it('finds a node by id', () => {
    expect(nodeConfig(config, 'node2').webAddress).toBe('127.0.0.1:8082');
  });

  it('names the ids the config lists when the id is unknown', () => {
    expect(() => nodeConfig(config, 'node9')).toThrow(
      new ConfigError('unknown node id "node9"; the config lists node1, node2, node3'),
    );
  });
});

describe('tick conversion', () => {
  it('rounds every duration up to whole ticks', () => {
    const config = parseClusterConfig(threeNodes, 'test.yaml');
    expect(electionTicks(config)).toEqual({ min: 15, max: 30 });
    expect(heartbeatTicks(config)).toBe(5);
    const coarse = {
      tickIntervalMs: 40,
      electionTimeoutMinMs: 150,
      electionTimeoutMaxMs: 300,
      heartbeatIntervalMs: 50,
    };
    expect(electionTicks(coarse)).toEqual({ min: 4, max: 8 });
    expect(heartbeatTicks(coarse)).toBe(2);
  });
});
