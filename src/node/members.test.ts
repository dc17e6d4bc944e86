import { describe, expect, it } from 'vitest';
import { encodeAddressBook, parseAddressBook } from './members.js';

describe('the address book a configuration carries', () => {
  const book = new Map([
    ['n1', { grpcAddress: '127.0.0.1:1', webAddress: '127.0.0.1:2' }],
    ['n2', { grpcAddress: '127.0.0.1:3', webAddress: '127.0.0.1:4' }],
  ]);

  it('round-trips the addresses of the members it names, and only those', () => {
    const context = encodeAddressBook(['n2', 'n9'], book);
    expect([...parseAddressBook(context)]).toEqual([
      ['n2', { grpcAddress: '127.0.0.1:3', webAddress: '127.0.0.1:4' }],
    ]);
  });

  it.each(['', 'not json', '[1]', '{"n1":{"grpc":5}}', 'null'])(
    'an empty or unreadable context %j yields no addresses instead of failing the node',
    (context) => expect(parseAddressBook(context).size).toBe(0),
  );
});
