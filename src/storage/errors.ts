/**
 * Stored data that cannot be trusted: a checksum mismatch that is not a torn tail, a missing WAL segment, a log
 * that is not contiguous, a damaged snapshot file. The node must not start from it; a human has to look (or the
 * node's data is wiped and it catches up from the leader as a new member).
 */
export class StorageCorruptError extends Error {
  override readonly name = 'StorageCorruptError';
  /** The file at fault (a path), and the byte offset in it when one is known. */
  readonly file: string;
  readonly offset: number | null;

  constructor(file: string, offset: number | null, reason: string) {
    super(`${file}${offset === null ? '' : ` at offset ${offset}`}: ${reason}`);
    this.file = file;
    this.offset = offset;
  }
}
