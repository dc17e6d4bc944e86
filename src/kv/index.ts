export { encodeCommand, decodeCommand, CommandDecodeError, type Command } from './command.js';
export { KvStore, type ApplyResult, type StoredValue } from './store.js';
