// An etcd cluster for the benchmark: N members of Debian's etcd-server on loopback, each with its own data
// directory (etcd fsyncs its WAL by default), driven through the JSON gateway of its gRPC API (/v3/...).
//
// Timing. Rafting elects after a random 150–300 ms without a leader (10 ms ticks) and heartbeats every 50 ms.
// etcd counts in heartbeat ticks: --election-timeout E is E/heartbeat ticks, and its raft randomises each
// timeout in [E, 2E). So E = 150 gives the same 150–300 ms range. etcd refuses an election timeout under five
// heartbeats, which rules out a 50 ms heartbeat with E = 150; a 30 ms heartbeat (5 ticks: 150, 180, ... 270 ms)
// is the closest pair it accepts. Rafting runs PreVote and CheckQuorum: etcd always checks quorum, and
// --pre-vote=true turns PreVote on (3.4 defaults to off).

import { randomBytes } from 'node:crypto';
import { freePorts } from '../chaos/cluster.js';
import { BenchCluster, memberIds, type Command, type Endpoint, type LeaderView } from './cluster.js';

export const etcdTiming = {
  heartbeatIntervalMs: 30,
  electionTimeoutMs: 150,
  preVote: true,
} as const;

interface StatusResponse {
  readonly header?: { readonly member_id?: string };
  readonly leader?: string;
  readonly raftTerm?: string;
}

export function base64(text: string): string {
  return Buffer.from(text, 'utf8').toString('base64');
}

export class EtcdCluster extends BenchCluster {
  readonly system = 'etcd' as const;
  /** etcd's member ids (decimal strings, as the gateway prints them) → our ids. */
  readonly #names = new Map<string, string>();

  private constructor(
    dir: string,
    ids: readonly string[],
    readonly binary: string,
    readonly client: Readonly<Record<string, Endpoint>>,
    readonly peer: Readonly<Record<string, Endpoint>>,
    readonly token: string,
  ) {
    super(dir, ids);
  }

  static async create(dir: string, size: number, binary: string): Promise<EtcdCluster> {
    const ids = memberIds(size);
    const ports = await freePorts(size * 2);
    const client: Record<string, Endpoint> = {};
    const peer: Record<string, Endpoint> = {};
    ids.forEach((id, i) => {
      client[id] = { host: '127.0.0.1', port: ports[i]! };
      peer[id] = { host: '127.0.0.1', port: ports[size + i]! };
    });
    return new EtcdCluster(dir, ids, binary, client, peer, `bench-${randomBytes(4).toString('hex')}`);
  }

  endpoint(id: string): Endpoint {
    const e = this.client[id];
    if (e === undefined) throw new Error(`no member ${id}`);
    return e;
  }

  protected command(id: string): Command {
    const peerUrl = (m: string) => `http://${this.peer[m]!.host}:${this.peer[m]!.port}`;
    const clientUrl = this.url(id);
    return {
      command: this.binary,
      args: [
        '--name',
        id,
        '--data-dir',
        this.dataDir(id),
        '--listen-client-urls',
        clientUrl,
        '--advertise-client-urls',
        clientUrl,
        '--listen-peer-urls',
        peerUrl(id),
        '--initial-advertise-peer-urls',
        peerUrl(id),
        '--initial-cluster',
        this.ids.map((m) => `${m}=${peerUrl(m)}`).join(','),
        '--initial-cluster-token',
        this.token,
        '--initial-cluster-state',
        'new',
        '--heartbeat-interval',
        String(etcdTiming.heartbeatIntervalMs),
        '--election-timeout',
        String(etcdTiming.electionTimeoutMs),
        `--pre-vote=${etcdTiming.preVote}`,
        '--logger',
        'zap',
        '--log-outputs',
        'stderr',
      ],
    };
  }

  async #post(id: string, path: string, body: unknown, timeoutMs: number): Promise<unknown> {
    const res = await fetch(`${this.url(id)}${path}`, {
      method: 'POST',
      body: JSON.stringify(body),
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    const json: unknown = await res.json().catch(() => undefined);
    if (res.status !== 200) throw new Error(`${path}: ${res.status}`);
    return json;
  }

  async view(id: string, timeoutMs = 1000): Promise<LeaderView | undefined> {
    try {
      const s = (await this.#post(id, '/v3/maintenance/status', {}, timeoutMs)) as StatusResponse;
      const self = s.header?.member_id;
      if (self === undefined) return undefined;
      this.#names.set(self, id);
      const leader = s.leader === undefined || s.leader === '0' ? null : s.leader;
      if (leader !== null && !this.#names.has(leader)) await this.#learnNames(id, timeoutMs);
      return {
        id,
        isLeader: leader !== null && leader === self,
        term: Number(s.raftTerm ?? 0),
        leader: leader === null ? null : (this.#names.get(leader) ?? null),
      };
    } catch {
      return undefined;
    }
  }

  /** etcd member ids → names, from the member list. */
  async #learnNames(id: string, timeoutMs: number): Promise<void> {
    const list = (await this.#post(id, '/v3/cluster/member/list', {}, timeoutMs)) as {
      members?: { ID?: string; name?: string }[];
    };
    for (const m of list.members ?? []) {
      if (m.ID !== undefined && m.name !== undefined && m.name !== '') this.#names.set(m.ID, m.name);
    }
  }

  async put(id: string, key: string, value: string, timeoutMs = 2000): Promise<boolean> {
    try {
      await this.#post(id, '/v3/kv/put', { key: base64(key), value: base64(value) }, timeoutMs);
      return true;
    } catch {
      return false;
    }
  }
}
