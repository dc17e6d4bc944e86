import { describe, expect, it } from 'vitest';
import { formatMembers } from './members.js';

describe('rafting members output', () => {
  it('shows the configuration, each member with its role, and marks the leader and the leaving voters', () => {
    const text = formatMembers({
      clusterId: 'c',
      leader: 'n1',
      config: { index: 7, voters: ['n1', 'n3'], learners: ['n4'], outgoing: ['n1', 'n2'], joint: true },
      members: [
        {
          id: 'n1',
          role: 'voter',
          outgoing: true,
          grpcAddress: 'h:1',
          webAddress: 'h:2',
          matchIndex: null,
          reachable: true,
        },
        {
          id: 'n3',
          role: 'voter',
          outgoing: false,
          grpcAddress: 'h:5',
          webAddress: 'h:6',
          matchIndex: 7,
          reachable: true,
        },
        {
          id: 'n2',
          role: 'voter',
          outgoing: true,
          grpcAddress: 'h:3',
          webAddress: 'h:4',
          matchIndex: 6,
          reachable: false,
        },
        {
          id: 'n4',
          role: 'learner',
          outgoing: false,
          grpcAddress: 'h:7',
          webAddress: 'h:8',
          matchIndex: 2,
          reachable: true,
        },
      ],
      settings: {} as never,
    });
    expect(text).toBe(
      [
        'configuration at index 7: voters n1, n3; learners n4 (joint: old voters n1, n2)',
        'NODE  ROLE             GRPC  WEB  MATCH',
        'n1 *  voter            h:1   h:2  -',
        'n3    voter            h:5   h:6  7',
        'n2    voter (leaving)  h:3   h:4  6',
        'n4    learner          h:7   h:8  2',
        '(* leader)',
        '',
      ].join('\n'),
    );
  });
});
