import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePorts } from './ports.js';

export interface TestClusterFiles {
  readonly dir: string;
  readonly configPath: string;
  readonly ids: string[];
  readonly web: Record<string, string>;
  readonly yaml: string;
}

/** Writes a cluster config with fresh loopback ports into a new temporary directory. */
export async function writeTestConfig(
  size: number,
  extra: Record<string, number | string> = {},
): Promise<TestClusterFiles> {
  const dir = await mkdtemp(join(tmpdir(), 'rafting-test-'));
  const ports = await freePorts(size * 2);
  const ids = Array.from({ length: size }, (_, i) => `node${i + 1}`);
  const web: Record<string, string> = {};
  const lines = Object.entries({ tick_interval_ms: 10, request_timeout_ms: 3000, ...extra }).map(
    ([k, v]) => `${k}: ${v}`,
  );
  lines.push('cluster:');
  ids.forEach((id, i) => {
    web[id] = `127.0.0.1:${ports[size + i]}`;
    lines.push(
      `  - node_id: ${id}`,
      `    grpc_address: 127.0.0.1:${ports[i]}`,
      `    web_address: ${web[id]}`,
      `    peers: [${ids.filter((x) => x !== id).join(', ')}]`,
    );
  });
  const yaml = lines.join('\n') + '\n';
  const configPath = join(dir, 'cluster.yaml');
  await writeFile(configPath, yaml);
  return { dir, configPath, ids, web, yaml };
}
