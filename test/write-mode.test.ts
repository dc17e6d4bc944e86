// Who waits for the disk: a follower (or candidate) writes its log blocking on its main thread, a leader through
// the thread pool, so that its AppendEntries and answers do not wait for its own write (thesis §10.2.1). The node
// sets the mode from the role of each Ready; this test watches the storage being told as leadership moves.

import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseClusterConfig } from '../src/config/load.js';
import { startNode, type RunningNode } from '../src/node/start.js';
import { MemoryStorage } from '../src/storage/memory.js';
import { writeTestConfig } from './helpers/config.js';
import { waitFor } from './helpers/wait.js';

/** A memory storage that remembers the write mode it was last told. */
class ModeStorage extends MemoryStorage {
  blocking: boolean | undefined;
  setBlockingWrites(blocking: boolean): void {
    this.blocking = blocking;
  }
}

const nodes: { running: RunningNode; storage: ModeStorage }[] = [];

beforeAll(async () => {
  const files = await writeTestConfig(3);
  const config = parseClusterConfig(files.yaml, files.configPath);
  for (const id of files.ids) {
    const storage = new ModeStorage();
    const running = await startNode({ config, nodeId: id, logger: pino({ level: 'silent' }), storage });
    nodes.push({ running, storage });
  }
}, 30_000);

afterAll(async () => {
  for (const n of nodes) await n.running.close();
});

function leader(): (typeof nodes)[number] | undefined {
  return nodes.find((n) => n.running.node.status().role === 'leader');
}

/** Every node's storage mode matches its role: blocking unless it leads. */
function modesMatchRoles(): boolean {
  return nodes.every((n) => n.storage.blocking === (n.running.node.status().role !== 'leader'));
}

describe('WAL write mode follows the role', () => {
  it('the leader writes through the thread pool, followers block; a leadership transfer swaps them', async () => {
    await waitFor(
      'a leader, and every node in the mode of its role',
      () => leader() !== undefined && modesMatchRoles(),
    );
    const first = leader()!;
    expect(first.storage.blocking).toBe(false);
    expect(nodes.filter((n) => n.storage.blocking === true)).toHaveLength(2);

    const next = nodes.find((n) => n !== first)!;
    await first.running.node.transferLeadership(next.running.node.id);
    await waitFor(
      'the new leader, and every node in the mode of its role',
      () => leader() === next && modesMatchRoles(),
    );
    expect(next.storage.blocking).toBe(false);
    expect(first.storage.blocking).toBe(true);
    // A write goes through in the new modes.
    const result = await next.running.node.put('after-transfer', 'v');
    expect(result).toMatchObject({ op: 'set', ok: true, key: 'after-transfer' });
  }, 30_000);
});
