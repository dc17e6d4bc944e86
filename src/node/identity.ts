// What a node's data directory remembers about the cluster it belongs to, written once, at its first start:
// the cluster id and the bootstrap voters. Both must stay fixed for the life of the data directory:
// - the cluster id is derived from the config file's node list by default, and that list may be edited once the
//   membership changes at run time (thesis chapter 4); the data directory keeps the id it started with;
// - the bootstrap voters are the configuration a node uses while its log and snapshot hold none. A node that
//   joined a running cluster has none (it must never count itself a voter of the config file's list), and that
//   must survive a restart that happens before its log brings it a configuration.

import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { NodeId } from '../raft/types.js';
import { isCode, newCounters, syncDir, writeAll } from '../storage/fsutil.js';

export interface NodeIdentity {
  readonly clusterId: string;
  readonly nodeId: NodeId;
  readonly bootstrapVoters: readonly NodeId[];
}

const fileName = 'cluster.json';

/** The identity stored in `dataDir`, or null for a directory that has none yet. */
export async function readIdentity(dataDir: string): Promise<NodeIdentity | null> {
  const path = join(dataDir, fileName);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isCode(err, 'ENOENT')) return null;
    throw err;
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${path}: not valid JSON`);
  }
  const v = value as Partial<Record<keyof NodeIdentity, unknown>> | null;
  if (
    typeof v?.clusterId !== 'string' ||
    typeof v.nodeId !== 'string' ||
    !Array.isArray(v.bootstrapVoters) ||
    !v.bootstrapVoters.every((id) => typeof id === 'string')
  ) {
    throw new Error(`${path}: expected {"clusterId","nodeId","bootstrapVoters"}`);
  }
  return { clusterId: v.clusterId, nodeId: v.nodeId, bootstrapVoters: v.bootstrapVoters as NodeId[] };
}

/** Stores `identity` in `dataDir` durably (temporary file, fsync, rename, directory fsync). */
export async function writeIdentity(dataDir: string, identity: NodeIdentity): Promise<void> {
  const path = join(dataDir, fileName);
  const temp = `${path}.tmp`;
  const fh = await open(temp, 'w');
  try {
    await writeAll(fh, Buffer.from(`${JSON.stringify(identity, null, 2)}\n`), 0);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(temp, path);
  await syncDir(dataDir, newCounters());
}
