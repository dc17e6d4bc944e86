// The replicated key-value state machine: commands and their log encoding, the store, its snapshots.

export {
  encodeCommand,
  decodeCommand,
  CommandDecodeError,
  maxIdempotencyKeyBytes,
  type Command,
  type Condition,
  type WriteOptions,
} from './command.js';
export { KvStore, kvStoreDefaults, type KvStoreOptions } from './store.js';
export { SnapshotFormatError } from './snapshot.js';
export type {
  ApplyResult,
  ConditionFailed,
  DeleteApplied,
  GetApplied,
  InvalidCommand,
  SetApplied,
  StoredValue,
  WriteResult,
} from './types.js';
