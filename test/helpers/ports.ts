// Free loopback ports: the same helper the chaos runner uses.
export { freePorts } from '../../src/chaos/cluster.js';
