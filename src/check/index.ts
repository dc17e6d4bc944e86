// Linearizability checking for histories recorded against the key-value store (Jepsen-style tests).

export {
  formatOperation,
  HistoryError,
  HistoryRecorder,
  type CasInput,
  type CasOp,
  type DeleteOp,
  type Operation,
  type OpKind,
  type OpRequest,
  type OpStatus,
  type ReadOp,
  type Value,
  type WriteOp,
} from './history.js';
export { checkHistory, type CheckOptions, type CheckResult, type Violation } from './linearizable.js';
export { parseJepsenLog, type JepsenParseOptions } from './jepsen.js';
