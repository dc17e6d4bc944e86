// Assembles one node: storage, gRPC transport, the runtime and the REST API.

import type { Logger } from 'pino';
import type { ClusterConfig } from '../config/types.js';
import { buildHttpServer } from '../http/server.js';
import type { NodeId } from '../raft/types.js';
import { FileStorage } from '../storage/file.js';
import { MemoryStorage } from '../storage/memory.js';
import type { Storage } from '../storage/storage.js';
import { GrpcTransport } from '../transport/grpc.js';
import type { Transport } from '../transport/transport.js';
import { NotLeaderError, UnavailableError } from './errors.js';
import { readIdentity, writeIdentity } from './identity.js';
import { nodeMetrics } from './metrics.js';
import { RaftNode } from './node.js';

export interface StartNodeOptions {
  readonly config: ClusterConfig;
  readonly nodeId: NodeId;
  /** Where the node keeps its durable state; without one (here or in the config) it keeps it in memory. */
  readonly dataDir?: string;
  readonly logger: Logger;
  /**
   * The node joins a running cluster (`rafting --join`): it starts with no configuration of its own and learns it
   * from the leader's log. Otherwise a node whose storage holds no configuration starts with the config's nodes
   * as the voters (a new cluster).
   */
  readonly join?: boolean;
  /**
   * A storage to use instead of the one `dataDir` names (for embedders and tests). The node uses it as it is: no
   * data directory, no identity file.
   */
  readonly storage?: Storage;
  /**
   * A transport to use instead of a new gRPC one (for tests that watch what a node sends). It must listen on this
   * node's `grpc_address` and carry the config's cluster id.
   */
  readonly transport?: Transport;
}

export interface RunningNode {
  readonly node: RaftNode;
  readonly webUrl: string;
  close(): Promise<void>;
}

export async function startNode(options: StartNodeOptions): Promise<RunningNode> {
  const { config, nodeId, logger } = options;
  const self = config.nodes.find((n) => n.id === nodeId);
  if (self === undefined) throw new Error(`unknown node id ${JSON.stringify(nodeId)}`);
  const dataDir = options.dataDir ?? self.dataDir;
  let storage: Storage;
  let clusterId = config.clusterId;
  let bootstrapVoters = options.join === true ? [] : config.nodes.map((n) => n.id);
  if (options.storage !== undefined) {
    storage = options.storage;
  } else if (dataDir === undefined) {
    logger.warn('no data directory: state is kept in memory and lost when the process stops');
    storage = new MemoryStorage();
  } else {
    storage = await FileStorage.open(dataDir, { logger: logger.child({ component: 'storage' }) });
    logger.info({ dataDir }, `keeping durable state in ${dataDir}`);
    const identity = await readIdentity(dataDir);
    if (identity === null) {
      await writeIdentity(dataDir, { clusterId, nodeId, bootstrapVoters });
    } else {
      if (identity.nodeId !== nodeId) {
        await storage.close();
        throw new Error(`${dataDir} holds the state of node ${identity.nodeId}, not ${nodeId}`);
      }
      if (identity.clusterId !== clusterId) {
        logger.warn(
          { stored: identity.clusterId, config: clusterId },
          `the data directory belongs to cluster ${identity.clusterId}; keeping that id`,
        );
      }
      clusterId = identity.clusterId;
      bootstrapVoters = [...identity.bootstrapVoters];
    }
  }
  const transport =
    options.transport ??
    new GrpcTransport({
      self: nodeId,
      clusterId,
      listenAddress: self.grpcAddress,
      // The node sets its peers from the configuration in force as it starts (RaftNode.start).
      peers: [],
      logger: logger.child({ component: 'transport' }),
    });
  const node = await RaftNode.create({
    id: nodeId,
    config: { ...config, clusterId },
    storage,
    transport,
    logger,
    bootstrapVoters,
    ...(self.dial === undefined ? {} : { dial: self.dial }),
    readIndexFromLeader: (leader, from, timeoutMs) =>
      readIndexFrom(peerWebAddress(leader), leader, from, timeoutMs),
  });
  /** Where this node reaches a peer's REST API (its web address, unless `web_dial` says otherwise). */
  const peerWebAddress = (id: NodeId): string | undefined => self.webDial?.[id] ?? node.webAddressOf(id);
  await node.start();

  const http = buildHttpServer({
    service: node,
    logger,
    maxKeyBytes: config.maxKeyBytes,
    maxValueBytes: config.maxValueBytes,
    retryAfterSeconds: Math.max(1, Math.ceil(config.electionTimeoutMaxMs / 1000)),
    leaderWaitMs: config.electionTimeoutMaxMs * 2,
    forwardTimeoutMs: config.requestTimeoutMs + 1000,
    forwardAddressOf: peerWebAddress,
    metrics: nodeMetrics({
      id: nodeId,
      status: () => node.status(),
      node: () => node.stats(),
      ...(storage instanceof FileStorage ? { storage: () => storage.stats() } : {}),
      ...(transport instanceof GrpcTransport ? { transport: () => transport.stats() } : {}),
    }),
  });
  const [host, port] = splitHostPort(self.webAddress);
  try {
    await http.listen({ host, port });
  } catch (e) {
    await node.close();
    throw e;
  }
  const webUrl = `http://${self.webAddress}`;
  logger.info({ web: webUrl, grpc: self.grpcAddress }, `${nodeId} serving clients on ${webUrl}`);

  let closing: Promise<void> | undefined;
  return {
    node,
    webUrl,
    close: () => {
      closing ??= (async () => {
        await http.close();
        await node.close();
      })();
      return closing;
    },
  };
}

/** A follower's linearizable read asks the leader for a confirmed read index over HTTP (thesis §6.4). */
async function readIndexFrom(
  address: string | undefined,
  leader: NodeId,
  from: NodeId,
  timeoutMs: number,
): Promise<number> {
  if (address === undefined) throw new NotLeaderError(null);
  let res: Response;
  try {
    res = await fetch(`http://${address}/internal/read-index?for=${encodeURIComponent(from)}`, {
      method: 'POST',
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch {
    throw new UnavailableError(`cannot reach the leader ${leader} to confirm a read`);
  }
  const body = (await res.json().catch(() => ({}))) as { index?: unknown; error?: { message?: string } };
  if (res.status === 200 && typeof body.index === 'number') return body.index;
  if (res.status === 307 || body.error?.message?.includes('leader') === true) throw new NotLeaderError(null);
  throw new UnavailableError(
    `the leader ${leader} could not confirm a read: ${body.error?.message ?? res.status}`,
  );
}

function splitHostPort(address: string): [string, number] {
  const colon = address.lastIndexOf(':');
  return [address.slice(0, colon).replace(/^\[|\]$/g, ''), Number(address.slice(colon + 1))];
}
