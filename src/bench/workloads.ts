// The workloads: what each sends and to which members.

export const workloadNames = ['put-leader', 'put-all', 'get-linearizable', 'get-stale', 'mix'] as const;
export type WorkloadName = (typeof workloadNames)[number];

export interface Workload {
  readonly name: WorkloadName;
  readonly description: string;
  /** The share of requests that are reads. */
  readonly readFraction: number;
  readonly stale: boolean;
  /** Load on the leader only, or spread over every member (one wrk process each, connections split). */
  readonly target: 'leader' | 'all';
  /** Whether keys must be written before the run (reads need something to read). */
  readonly preload: boolean;
}

export const workloads: Readonly<Record<WorkloadName, Workload>> = {
  'put-leader': {
    name: 'put-leader',
    description: 'PUT of unique 16-byte keys, 100-byte values, to the leader',
    readFraction: 0,
    stale: false,
    target: 'leader',
    preload: false,
  },
  'put-all': {
    name: 'put-all',
    description: 'PUT of unique keys, connections split over every member (followers pass writes on)',
    readFraction: 0,
    stale: false,
    target: 'all',
    preload: false,
  },
  'get-linearizable': {
    name: 'get-linearizable',
    description: 'linearizable GET of pre-written keys, to the leader',
    readFraction: 1,
    stale: false,
    target: 'leader',
    preload: true,
  },
  'get-stale': {
    name: 'get-stale',
    description: 'stale GET (etcd: serializable) of pre-written keys, spread over every member',
    readFraction: 1,
    stale: true,
    target: 'all',
    preload: true,
  },
  mix: {
    name: 'mix',
    description: '90% linearizable GET / 10% PUT over the pre-written keys, to the leader',
    readFraction: 0.9,
    stale: false,
    target: 'leader',
    preload: true,
  },
};
