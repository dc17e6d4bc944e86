import type { Message, NodeId } from '../raft/types.js';

/**
 * Carries Raft messages between nodes. Raft messages are one-way (as in etcd/raft): a response is just another
 * message travelling the other way. Delivery is best effort: messages may be dropped (Raft retries), but
 * messages from one sender to one receiver are delivered in order while a connection lasts.
 */
export interface Transport {
  /** Start listening; `onMessage` receives every accepted incoming message. */
  start(onMessage: (message: Message) => void): Promise<void>;
  /** Queue messages for sending; never blocks and never throws for an unreachable peer. */
  send(messages: readonly Message[]): void;
  close(): Promise<void>;
}

export interface PeerAddress {
  readonly id: NodeId;
  readonly grpcAddress: string;
}
