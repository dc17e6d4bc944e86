// The commands of the replicated key-value store and their compact binary form in log entries.
//
//   byte 0      op: 1 set, 2 delete, 3 get (a read that goes through the log, until ReadIndex exists)
//   bytes 1..4  key length in bytes, unsigned big-endian
//   then        the key (UTF-8), then for `set` the value (UTF-8) to the end of the entry

export type Command =
  | { readonly op: 'set'; readonly key: string; readonly value: string }
  | { readonly op: 'delete'; readonly key: string }
  | { readonly op: 'get'; readonly key: string };

const opCodes = { set: 1, delete: 2, get: 3 } as const;
const headerBytes = 5;

export function encodeCommand(command: Command): Uint8Array {
  const keyBytes = Buffer.byteLength(command.key, 'utf8');
  const valueBytes = command.op === 'set' ? Buffer.byteLength(command.value, 'utf8') : 0;
  const out = Buffer.allocUnsafe(headerBytes + keyBytes + valueBytes);
  out[0] = opCodes[command.op];
  out.writeUInt32BE(keyBytes, 1);
  out.write(command.key, headerBytes, 'utf8');
  if (command.op === 'set') out.write(command.value, headerBytes + keyBytes, 'utf8');
  return out;
}

export class CommandDecodeError extends Error {}

export function decodeCommand(data: Uint8Array): Command {
  if (data.length < headerBytes) throw new CommandDecodeError(`command of ${data.length} bytes is too short`);
  const buf = Buffer.from(data.buffer, data.byteOffset, data.length);
  const keyBytes = buf.readUInt32BE(1);
  if (headerBytes + keyBytes > buf.length)
    throw new CommandDecodeError(`key length ${keyBytes} overruns command`);
  const key = buf.toString('utf8', headerBytes, headerBytes + keyBytes);
  switch (buf[0]) {
    case opCodes.set:
      return { op: 'set', key, value: buf.toString('utf8', headerBytes + keyBytes) };
    case opCodes.delete:
      return { op: 'delete', key };
    case opCodes.get:
      return { op: 'get', key };
    default:
      throw new CommandDecodeError(`unknown op ${buf[0]}`);
  }
}
