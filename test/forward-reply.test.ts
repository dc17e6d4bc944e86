// A write sent to a follower is passed to the leader in a Forward (thesis §6.2); the leader's answer (where it put
// the write) travels in the same batch as the AppendEntries that carry the entry, ahead of it: one message on the
// wire instead of two, and the follower knows the index before any commit index covering it arrives. Three real
// nodes; every node's transport records what the node hands it in each send() call (one call, one batch per peer).

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../src/config/load.js';
import type { AppendEntries } from '../src/raft/types.js';
import { startNode, type RunningNode } from '../src/node/start.js';
import { GrpcTransport } from '../src/transport/grpc.js';
import type { ForwardResponse, Message } from '../src/transport/transport.js';
import { writeTestConfig } from './helpers/config.js';
import { request } from './helpers/http.js';
import { waitFor } from './helpers/wait.js';

class RecordingTransport extends GrpcTransport {
  readonly calls: (readonly Message[])[] = [];
  override send(messages: readonly Message[]): void {
    this.calls.push(messages);
    super.send(messages);
  }
}

const nodes: { running: RunningNode; transport: RecordingTransport }[] = [];

beforeAll(async () => {
  const files = await writeTestConfig(3);
  const config = parseClusterConfig(files.yaml, files.configPath);
  for (const n of config.nodes) {
    const logger = pino({ level: 'silent' });
    const transport = new RecordingTransport({
      self: n.id,
      clusterId: config.clusterId,
      listenAddress: n.grpcAddress,
      peers: [],
      logger,
    });
    nodes.push({ running: await startNode({ config, nodeId: n.id, logger, transport }), transport });
  }
  await waitFor('a leader known to every node', () => {
    const leader = nodes.find((n) => n.running.node.status().role === 'leader');
    return (
      leader !== undefined && nodes.every((n) => n.running.node.status().leader === leader.running.node.id)
    );
  });
}, 30_000);

afterAll(async () => {
  for (const n of nodes) await n.running.close();
});

describe('the answer to a Forward', () => {
  it('goes to the follower in the same send as the AppendEntries carrying its entry, first', async () => {
    const leader = nodes.find((n) => n.running.node.status().role === 'leader')!;
    const follower = nodes.find((n) => n !== leader)!;
    const followerId = follower.running.node.id;
    leader.transport.calls.length = 0;

    const res = await request('PUT', `${follower.running.webUrl}/kv/via-follower`, { value: 'v' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-rafting-served-by')).toBe(followerId);

    const toFollower = leader.transport.calls.map((call) => call.filter((m) => m.to === followerId));
    const answers = toFollower.filter((call) => call.some((m) => m.type === 'ForwardResponse'));
    expect(answers).toHaveLength(1);
    const call = answers[0]!;
    const answer = call[0] as ForwardResponse;
    expect(answer.type).toBe('ForwardResponse');
    const placed = answer.results[0]!;
    expect(placed.error).toBeUndefined();
    const index = (placed as { index: number }).index;
    const appends = call.filter((m): m is AppendEntries => m.type === 'AppendEntries');
    expect(appends.some((a) => a.entries.some((e) => e.index === index))).toBe(true);
  }, 30_000);

  it('goes at once and alone when the receiver takes none of the writes: with the reason and its leader', async () => {
    const leader = nodes.find((n) => n.running.node.status().role === 'leader')!;
    const [from, to] = nodes.filter((n) => n !== leader) as [(typeof nodes)[0], (typeof nodes)[0]];
    const fromId = from.running.node.id;
    to.transport.calls.length = 0;
    // A Forward to a follower (as from a node whose idea of the leader is stale): nothing is proposed, so the
    // answer has no AppendEntries to ride with.
    from.transport.send([
      {
        type: 'Forward',
        from: fromId,
        to: to.running.node.id,
        term: to.running.node.status().term,
        requests: [{ id: 424242, data: new Uint8Array([1, 2, 3]) }],
      },
    ]);
    const call = await waitFor('the answer', () =>
      to.transport.calls.find((c) => c.some((m) => m.type === 'ForwardResponse')),
    );
    expect(call).toEqual([
      {
        type: 'ForwardResponse',
        from: to.running.node.id,
        to: fromId,
        term: expect.any(Number),
        results: [{ id: 424242, error: 'not_leader' }],
        leader: leader.running.node.id,
      },
    ]);
    // The sender had no request 424242 waiting: it ignores the answer and goes on passing writes on.
    const res = await request('PUT', `${from.running.webUrl}/kv/after-refusal`, { value: 'v' });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-rafting-served-by')).toBe(fromId);
  }, 30_000);
});
