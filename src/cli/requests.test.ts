import { describe, expect, it } from 'vitest';
import type { NodeStatus } from '../node/api.js';
import { formatStatusTable } from './requests.js';

function status(fields: Partial<NodeStatus> & Pick<NodeStatus, 'id'>): NodeStatus {
  return {
    role: 'follower',
    term: 1,
    leader: null,
    commitIndex: 0,
    lastApplied: 0,
    lastLogIndex: 0,
    firstLogIndex: 1,
    snapshotIndex: 0,
    config: { index: 0, voters: [], learners: [], outgoing: [], joint: false },
    peers: [],
    ...fields,
  };
}

describe('formatStatusTable', () => {
  it('aligns the columns to the widest cell and shows down nodes', () => {
    const table = formatStatusTable([
      {
        id: 'node1',
        address: '127.0.0.1:8081',
        status: status({
          id: 'node1',
          role: 'leader',
          term: 3,
          leader: 'node1',
          commitIndex: 1234,
          lastApplied: 1234,
        }),
      },
      { id: 'a-long-node-name', address: 'db2.example.com:8082', status: null },
      { id: 'node3', address: '127.0.0.1:8083', status: status({ id: 'node3', role: 'candidate', term: 4 }) },
    ]);
    expect(table).toBe(
      [
        'NODE              ROLE       TERM  LEADER  COMMIT  APPLIED  ADDRESS',
        'node1             leader     3     node1   1234    1234     127.0.0.1:8081',
        'a-long-node-name  down       -     -       -       -        db2.example.com:8082',
        'node3             candidate  4     -       0       0        127.0.0.1:8083',
        '',
      ].join('\n'),
    );
  });

  it('prints only the header for no nodes', () => {
    expect(formatStatusTable([])).toBe('NODE  ROLE  TERM  LEADER  COMMIT  APPLIED  ADDRESS\n');
  });
});
