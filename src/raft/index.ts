// The core's public surface (STYLE.md 13: one entry file per module).
export {
  Raft,
  defaultLimits,
  type RaftOptions,
  type RaftLimits,
  type Ready,
  type ProposeResult,
} from './raft.js';
export { SeededRandom, type Random } from './random.js';
export * from './types.js';
