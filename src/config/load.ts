// Reads the cluster config (config/cluster_config.yaml) and checks it before any node starts.
//
// The file keeps the seed project's snake_case format. Every problem is reported as one line naming the file,
// the line, and the key, e.g. `config/cluster_config.yaml:9: cluster[1].grpc_address: expected "host:port",
// got "abc"`, so a typo is found at startup rather than as a cluster that never elects a leader.

import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document } from 'yaml';
import type { NodeId } from '../raft/types.js';
import type { ClusterConfig, NodeConfig } from './types.js';

/** A config file that cannot be used. The message is one line that names the file and the offending key. */
export class ConfigError extends Error {
  constructor(
    message: string,
    /** The key in the file's notation (`cluster[1].grpc_address`), when the problem is one key. */
    readonly key?: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

/** The values used for keys the file leaves out. */
export const configDefaults = {
  tickIntervalMs: 10,
  electionTimeoutMinMs: 150,
  electionTimeoutMaxMs: 300,
  heartbeatIntervalMs: 50,
  maxKeyBytes: 1024,
  maxValueBytes: 1024 * 1024,
  requestTimeoutMs: 5000,
  // As etcd 3.4 (--snapshot-count 100,000; 5,000 entries kept for slow followers): a snapshot copies and writes the
  // whole state, so taking one rarely keeps its cost off the write path; the log holds at most this many entries.
  snapshotThresholdEntries: 100_000,
  snapshotRetainEntries: 5_000,
  learnerMaxLagEntries: 1_000,
  learnerCatchupTimeoutMs: 30_000,
} as const;

/** Durations end up in setTimeout, which fires at once for anything above 2^31 - 1 ms. */
const maxDurationMs = 2 ** 31 - 1;

/** Node and cluster ids go into logs, metrics labels and messages: keep them short and plain. */
export const idPattern = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const idRule = 'letters, digits, ".", "_" or "-", at most 64, starting with a letter or digit';

/** `host:port`; an IPv6 host is written in brackets: `[::1]:50051`. */
export const addressPattern =
  /^(?<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?<port>[0-9]{1,5})$/;

const topLevelKeys = [
  'cluster_id',
  'tick_interval_ms',
  'election_timeout_min_ms',
  'election_timeout_max_ms',
  'heartbeat_interval_ms',
  'max_key_bytes',
  'max_value_bytes',
  'request_timeout_ms',
  'snapshot_threshold_entries',
  'snapshot_retain_entries',
  'learner_max_lag_entries',
  'learner_catchup_timeout_ms',
  'cluster',
] as const;

const nodeKeys = ['node_id', 'grpc_address', 'web_address', 'peers', 'data_dir', 'dial', 'web_dial'] as const;

type Path = readonly (string | number)[];
type Mapping = Readonly<Record<string, unknown>>;

/** Reads and checks the config file at `path`. Rejects with ConfigError. */
export async function loadClusterConfig(path: string): Promise<ClusterConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : String(error);
    throw new ConfigError(`${path}: cannot read the config file: ${reason}`);
  }
  return parseClusterConfig(text, path);
}

/** Parses and checks a config. `source` names the file in error messages. Throws ConfigError. */
export function parseClusterConfig(yamlText: string, source: string): ClusterConfig {
  const lineCounter = new LineCounter();
  const doc = parseDocument(yamlText, { lineCounter, prettyErrors: false });
  const syntaxError = doc.errors[0];
  if (syntaxError !== undefined) {
    const { line, col } = lineCounter.linePos(syntaxError.pos[0]);
    throw new ConfigError(`${source}:${line}:${col}: YAML syntax error: ${syntaxError.message}`);
  }
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 });
  } catch (error) {
    throw new ConfigError(`${source}: YAML error: ${error instanceof Error ? error.message : String(error)}`);
  }
  return new Checker(doc, lineCounter, source).config(value);
}

/** The entry of node `id`. Throws ConfigError naming the ids the config does list. */
export function nodeConfig(config: ClusterConfig, id: NodeId): NodeConfig {
  const node = config.nodes.find((candidate) => candidate.id === id);
  if (node === undefined) {
    const known = config.nodes.map((candidate) => candidate.id).join(', ');
    throw new ConfigError(`unknown node id ${JSON.stringify(id)}; the config lists ${known}`);
  }
  return node;
}

export interface ElectionTicks {
  readonly min: number;
  readonly max: number;
}

/** The election timeout range in ticks, each bound rounded up to a whole tick. */
export function electionTicks(
  config: Pick<ClusterConfig, 'tickIntervalMs' | 'electionTimeoutMinMs' | 'electionTimeoutMaxMs'>,
): ElectionTicks {
  return {
    min: Math.ceil(config.electionTimeoutMinMs / config.tickIntervalMs),
    max: Math.ceil(config.electionTimeoutMaxMs / config.tickIntervalMs),
  };
}

/** The heartbeat interval in ticks, rounded up to a whole tick. */
export function heartbeatTicks(
  config: Pick<ClusterConfig, 'tickIntervalMs' | 'heartbeatIntervalMs'>,
): number {
  return Math.ceil(config.heartbeatIntervalMs / config.tickIntervalMs);
}

/** `cluster[1].grpc_address`, the way a reader finds the key in the file. */
export function keyText(path: Path): string {
  let text = '';
  for (const segment of path) {
    text += typeof segment === 'number' ? `[${segment}]` : text === '' ? segment : `.${segment}`;
  }
  return text;
}

/** Walks the plain value parsed from YAML, failing at the first problem with the key and its line. */
class Checker {
  constructor(
    private readonly doc: Document,
    private readonly lineCounter: LineCounter,
    private readonly source: string,
  ) {}

  config(value: unknown): ClusterConfig {
    if (value === null || value === undefined) {
      throw new ConfigError(
        `${this.source}: the file is empty; it needs at least a "cluster:" list of nodes`,
      );
    }
    const top = this.mapping([], value);
    this.knownKeys([], top, topLevelKeys);
    const durations = this.durations(top);
    const nodes = this.nodes(top);
    const clusterId =
      top['cluster_id'] === undefined ? defaultClusterId(nodes) : this.id(['cluster_id'], top);
    return {
      clusterId,
      ...durations,
      maxKeyBytes: this.positiveInteger(
        ['max_key_bytes'],
        top,
        configDefaults.maxKeyBytes,
        Number.MAX_SAFE_INTEGER,
      ),
      maxValueBytes: this.positiveInteger(
        ['max_value_bytes'],
        top,
        configDefaults.maxValueBytes,
        Number.MAX_SAFE_INTEGER,
      ),
      snapshotThresholdEntries: this.positiveInteger(
        ['snapshot_threshold_entries'],
        top,
        configDefaults.snapshotThresholdEntries,
        Number.MAX_SAFE_INTEGER,
      ),
      snapshotRetainEntries: this.positiveInteger(
        ['snapshot_retain_entries'],
        top,
        configDefaults.snapshotRetainEntries,
        Number.MAX_SAFE_INTEGER,
      ),
      learnerMaxLagEntries: this.positiveInteger(
        ['learner_max_lag_entries'],
        top,
        configDefaults.learnerMaxLagEntries,
        Number.MAX_SAFE_INTEGER,
      ),
      learnerCatchupTimeoutMs: this.positiveInteger(
        ['learner_catchup_timeout_ms'],
        top,
        configDefaults.learnerCatchupTimeoutMs,
        maxDurationMs,
      ),
      nodes,
    };
  }

  /** The durations; the four timing keys are checked against each other in milliseconds and in ticks. */
  private durations(top: Mapping) {
    const duration = (key: string, fallback: number) =>
      this.positiveInteger([key], top, fallback, maxDurationMs);
    const timing = {
      tickIntervalMs: duration('tick_interval_ms', configDefaults.tickIntervalMs),
      electionTimeoutMinMs: duration('election_timeout_min_ms', configDefaults.electionTimeoutMinMs),
      electionTimeoutMaxMs: duration('election_timeout_max_ms', configDefaults.electionTimeoutMaxMs),
      heartbeatIntervalMs: duration('heartbeat_interval_ms', configDefaults.heartbeatIntervalMs),
      requestTimeoutMs: duration('request_timeout_ms', configDefaults.requestTimeoutMs),
    };
    const values: Readonly<Record<string, number>> = {
      tick_interval_ms: timing.tickIntervalMs,
      election_timeout_min_ms: timing.electionTimeoutMinMs,
      election_timeout_max_ms: timing.electionTimeoutMaxMs,
      heartbeat_interval_ms: timing.heartbeatIntervalMs,
    };
    // Followers must hear a heartbeat well before they give up on the leader: broadcastTime ≪ electionTimeout (§5.6).
    this.ordered(top, values, 'election_timeout_min_ms', '<', 'election_timeout_max_ms');
    this.ordered(top, values, 'heartbeat_interval_ms', '<', 'election_timeout_min_ms');
    this.ordered(top, values, 'tick_interval_ms', '<=', 'heartbeat_interval_ms');
    const election = electionTicks(timing);
    const heartbeat = heartbeatTicks(timing);
    const tick = timing.tickIntervalMs;
    if (election.min >= election.max) {
      this.failBetween(
        top,
        'election_timeout_max_ms',
        'tick_interval_ms',
        `with tick_interval_ms ${tick}, election_timeout_min_ms and election_timeout_max_ms both round up to ` +
          `${election.min} ticks; leave at least one tick between them so that timeouts differ`,
      );
    }
    if (heartbeat >= election.min) {
      this.failBetween(
        top,
        'heartbeat_interval_ms',
        'tick_interval_ms',
        `with tick_interval_ms ${tick}, heartbeat_interval_ms rounds up to ${heartbeat} ticks and ` +
          `election_timeout_min_ms to ${election.min}; the heartbeat must be at least one tick shorter`,
      );
    }
    return timing;
  }

  /** Fails unless `values[low] op values[high]`, blaming the key the file sets (the lower one when both are). */
  private ordered(
    top: Mapping,
    values: Readonly<Record<string, number>>,
    low: string,
    op: '<' | '<=',
    high: string,
  ): void {
    const lowValue = values[low] ?? 0;
    const highValue = values[high] ?? 0;
    if (op === '<' ? lowValue < highValue : lowValue <= highValue) return;
    const words = op === '<' ? 'less than' : 'at most';
    const opposite = op === '<' ? 'greater than' : 'at least';
    if (top[low] === undefined && top[high] !== undefined) {
      this.fail([high], `must be ${opposite} ${low} (${lowValue}), got ${highValue}`);
    }
    this.fail([low], `must be ${words} ${high} (${highValue}), got ${lowValue}`);
  }

  /** Fails at `key`, or at `other` when only that one is written in the file. */
  private failBetween(top: Mapping, key: string, other: string, message: string): never {
    const blamed = top[key] === undefined && top[other] !== undefined ? other : key;
    this.fail([blamed], message);
  }

  private nodes(top: Mapping): NodeConfig[] {
    const list = top['cluster'];
    if (list === undefined) this.fail(['cluster'], 'missing; list the nodes of the cluster under "cluster:"');
    if (!Array.isArray(list)) this.fail(['cluster'], `expected a list of nodes, got ${describe(list)}`);
    if (list.length === 0) this.fail(['cluster'], 'the cluster has no nodes; list at least one');
    const drafts = list.map((item, index) => this.node(['cluster', index], item));
    this.uniqueIds(drafts);
    this.uniqueAddresses(drafts);
    const ids = drafts.map((draft) => draft.node.id);
    return drafts.map((draft, index) => {
      const peers = this.peers(['cluster', index, 'peers'], draft.raw['peers'], draft.node.id, ids);
      const dial = this.dial(['cluster', index, 'dial'], draft.raw['dial'], draft.node.id, ids);
      const webDial = this.dial(['cluster', index, 'web_dial'], draft.raw['web_dial'], draft.node.id, ids);
      return {
        ...draft.node,
        peers,
        ...(dial === undefined ? {} : { dial }),
        ...(webDial === undefined ? {} : { webDial }),
      };
    });
  }

  /**
   * `dial` / `web_dial`: where this node reaches some peers, when not at their grpc_address / web_address (a proxy
   * between them, as the fault-injection suite puts on every link).
   */
  private dial(
    path: Path,
    value: unknown,
    self: NodeId,
    ids: readonly NodeId[],
  ): Readonly<Record<NodeId, string>> | undefined {
    if (value === undefined) return undefined;
    const map = this.mapping(path, value);
    const out: Record<NodeId, string> = {};
    for (const peer of Object.keys(map)) {
      if (peer === self || !ids.includes(peer)) {
        this.fail(
          [...path, peer],
          `expected the id of another node of the cluster, got ${JSON.stringify(peer)}`,
        );
      }
      out[peer] = this.address([...path, peer], map);
    }
    return out;
  }

  private node(path: Path, item: unknown): { node: Omit<NodeConfig, 'peers'>; raw: Mapping } {
    const raw = this.mapping(path, item);
    this.knownKeys(path, raw, nodeKeys);
    const id = this.id([...path, 'node_id'], raw);
    const grpcAddress = this.address([...path, 'grpc_address'], raw);
    const webAddress = this.address([...path, 'web_address'], raw);
    const dataDir = raw['data_dir'];
    if (dataDir === undefined) return { node: { id, grpcAddress, webAddress }, raw };
    if (typeof dataDir !== 'string' || dataDir === '') {
      this.fail([...path, 'data_dir'], `expected a directory path, got ${describe(dataDir)}`);
    }
    return { node: { id, grpcAddress, webAddress, dataDir }, raw };
  }

  private uniqueIds(drafts: readonly { node: Omit<NodeConfig, 'peers'> }[]): void {
    const seen = new Map<string, number>();
    drafts.forEach(({ node }, index) => {
      const first = seen.get(node.id);
      if (first !== undefined) {
        this.fail(
          ['cluster', index, 'node_id'],
          `duplicate node id ${JSON.stringify(node.id)} (also cluster[${first}])`,
        );
      }
      seen.set(node.id, index);
    });
  }

  /** No two listeners on one host and port, counting every node's gRPC and web address. */
  private uniqueAddresses(drafts: readonly { node: Omit<NodeConfig, 'peers'> }[]): void {
    const seen = new Map<string, { path: Path; id: NodeId }>();
    drafts.forEach(({ node }, index) => {
      for (const key of ['grpc_address', 'web_address'] as const) {
        const address = key === 'grpc_address' ? node.grpcAddress : node.webAddress;
        const path = ['cluster', index, key];
        const first = seen.get(addressIdentity(address));
        if (first !== undefined) {
          this.fail(
            path,
            `${JSON.stringify(address)} is already used by ${keyText(first.path)} (${first.id})`,
          );
        }
        seen.set(addressIdentity(address), { path, id: node.id });
      }
    });
  }

  /** The seed's `peers:` list. Membership is every node under `cluster:`; omitted peers mean all the others. */
  private peers(path: Path, value: unknown, self: NodeId, ids: readonly NodeId[]): NodeId[] {
    if (value === undefined) return ids.filter((id) => id !== self);
    if (!Array.isArray(value)) this.fail(path, `expected a list of node ids, got ${describe(value)}`);
    const peers: NodeId[] = [];
    value.forEach((peer: unknown, index) => {
      const peerPath = [...path, index];
      if (typeof peer !== 'string') this.fail(peerPath, `expected a node id, got ${describe(peer)}`);
      if (peer === self) this.fail(peerPath, `a node is not its own peer (${JSON.stringify(peer)})`);
      if (!ids.includes(peer)) {
        this.fail(peerPath, `unknown node ${JSON.stringify(peer)}; the cluster lists ${ids.join(', ')}`);
      }
      if (peers.includes(peer)) this.fail(peerPath, `${JSON.stringify(peer)} is listed twice`);
      peers.push(peer);
    });
    return peers;
  }

  private mapping(path: Path, value: unknown): Mapping {
    if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Map) {
      const what = path.length === 0 ? 'the file' : keyText(path);
      throw this.error(path, `${what} must be a mapping of keys to values, got ${describe(value)}`, false);
    }
    return value as Mapping;
  }

  private knownKeys(path: Path, mapping: Mapping, known: readonly string[]): void {
    for (const key of Object.keys(mapping)) {
      if (known.includes(key)) continue;
      const guess = closest(key, known);
      const hint = guess === undefined ? `; known keys: ${known.join(', ')}` : ` (did you mean "${guess}"?)`;
      throw this.error([...path, key], `unknown key ${JSON.stringify(key)}${hint}`, false, 'key');
    }
  }

  private positiveInteger(path: Path, parent: Mapping, fallback: number, max: number): number {
    const value = parent[path[path.length - 1] as string];
    if (value === undefined) return fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) {
      this.fail(path, `expected a positive integer, got ${describe(value)}`);
    }
    if (value > max) this.fail(path, `must be at most ${max}, got ${value}`);
    return value;
  }

  private id(path: Path, parent: Mapping): string {
    const value = parent[path[path.length - 1] as string];
    if (value === undefined) this.fail(path, 'missing');
    if (typeof value !== 'string' || !idPattern.test(value)) {
      this.fail(path, `expected an id (${idRule}), got ${describe(value)}`);
    }
    return value;
  }

  private address(path: Path, parent: Mapping): string {
    const value = parent[path[path.length - 1] as string];
    if (value === undefined) this.fail(path, 'missing; expected "host:port"');
    const match = typeof value === 'string' ? addressPattern.exec(value) : null;
    if (match === null) this.fail(path, `expected "host:port", got ${describe(value)}`);
    const port = Number(match.groups?.['port']);
    if (port < 1 || port > 65535) this.fail(path, `the port must be 1 to 65535, got ${describe(value)}`);
    return value as string;
  }

  private fail(path: Path, message: string): never {
    throw this.error(path, message);
  }

  private error(path: Path, message: string, prefixKey = true, part: 'key' | 'value' = 'value'): ConfigError {
    const line = lineOf(this.doc, this.lineCounter, path, part);
    const where = line === undefined ? this.source : `${this.source}:${line}`;
    const key = keyText(path);
    const text = prefixKey && key !== '' ? `${where}: ${key}: ${message}` : `${where}: ${message}`;
    return new ConfigError(text, key === '' ? undefined : key);
  }
}

/** The line of the key or value at `path`; for a missing key, the line of the nearest enclosing node. */
function lineOf(
  doc: Document,
  lineCounter: LineCounter,
  path: Path,
  part: 'key' | 'value',
): number | undefined {
  let node: unknown = doc.contents;
  for (const [depth, segment] of path.entries()) {
    let next: unknown;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && item.key.value === segment);
      const last = depth === path.length - 1;
      next = pair === undefined ? undefined : last && part === 'key' ? pair.key : (pair.value ?? pair.key);
    } else if (isSeq(node) && typeof segment === 'number') {
      next = node.items[segment];
    }
    if (next === undefined || next === null) break;
    node = next;
  }
  const offset = (node as { range?: readonly number[] } | null | undefined)?.range?.[0];
  return offset === undefined ? undefined : lineCounter.linePos(offset).line;
}

/** The same listener whatever the spelling: host names are case-insensitive and loopback has several names. */
function addressIdentity(address: string): string {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon).toLowerCase();
  const port = Number(address.slice(colon + 1));
  const loopback = host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
  return `${loopback ? 'loopback' : host}:${port}`;
}

/** A short hex id that stays the same while the nodes and their gRPC addresses do. */
function defaultClusterId(nodes: readonly Pick<NodeConfig, 'id' | 'grpcAddress'>[]): string {
  const pairs = nodes.map((node) => [node.id, node.grpcAddress]).sort(([a], [b]) => (a! < b! ? -1 : 1));
  return createHash('sha256').update(JSON.stringify(pairs)).digest('hex').slice(0, 16);
}

function describe(value: unknown): string {
  if (value === null || value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  return JSON.stringify(value);
}

/** The known key within two edits of `key`, for "did you mean". */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const distance = editDistance(key, candidate);
    if (distance < bestDistance) [best, bestDistance] = [candidate, distance];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}
