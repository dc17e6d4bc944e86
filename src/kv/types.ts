// What the KV state machine holds and what applying a command answers. Every `index` below is a log index.

export interface StoredValue {
  readonly value: string;
  /** The log index of the entry that last changed the key. */
  readonly index: number;
}

/**
 * Present, and true, only on a result returned for a retry: a command whose idempotency key was already used by an
 * earlier entry. The result is that earlier entry's, unchanged (its `index` included), and nothing was applied again.
 */
interface Replayable {
  readonly replayed?: true;
}

/** A set that took effect: the key now holds `value`, changed by the entry at `index`. */
export interface SetApplied extends Replayable {
  readonly op: 'set';
  readonly ok: true;
  readonly key: string;
  readonly value: string;
  readonly index: number;
}

/** A delete that took effect at `index`; `deleted` says whether the key existed. */
export interface DeleteApplied extends Replayable {
  readonly op: 'delete';
  readonly ok: true;
  readonly key: string;
  readonly deleted: boolean;
  readonly index: number;
}

/** A conditional set or delete whose condition did not hold: it changed nothing. */
export interface ConditionFailed extends Replayable {
  readonly op: 'set' | 'delete';
  readonly ok: false;
  readonly reason: 'condition_failed';
  readonly key: string;
  /** The key as the condition saw it; null if it did not exist. */
  readonly current: StoredValue | null;
  /** The index of the entry that checked the condition (not the key's index: that is `current.index`). */
  readonly index: number;
}

/** A read ordered through the log. */
export interface GetApplied {
  readonly op: 'get';
  readonly key: string;
  readonly found: StoredValue | null;
}

/** An entry that could not be decoded; every replica rejects it the same way and changes nothing. */
export interface InvalidCommand {
  readonly op: 'invalid';
  readonly error: string;
}

/** The result of a set or delete: the kind of result an idempotency key remembers. */
export type WriteResult = SetApplied | DeleteApplied | ConditionFailed;

/**
 * The result of applying one entry. Narrow on `op`, then on `ok` for set and delete:
 *
 *   op 'set'     ok true: SetApplied        ok false: ConditionFailed
 *   op 'delete'  ok true: DeleteApplied     ok false: ConditionFailed
 *   op 'get'     GetApplied
 *   op 'invalid' InvalidCommand
 *
 * A set or delete without a condition always has ok true. With `replayed: true` (see Replayable) the `op` is that of
 * the first command that used the idempotency key, which need not be the op of the retry.
 */
export type ApplyResult = WriteResult | GetApplied | InvalidCommand;
