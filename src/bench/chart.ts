// chart.svg: per workload, requests/s and p99 latency by connection count, the two systems side by side; then
// the failover times of every trial as cumulative distributions. Plain SVG written by hand, in the style of
// the chaos runner's chart (src/chaos/chart.ts).

import type { SystemName } from './cluster.js';
import type { Trial } from './failover.js';
import { formatMs, formatRate } from './report.js';
import type { CellResult } from './throughput.js';
import type { WorkloadName } from './workloads.js';

const colors: Record<SystemName, string> = { rafting: '#1f77b4', etcd: '#ff7f0e' };

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

interface Panel {
  readonly x: number;
  readonly y: number;
  readonly w: number;
  readonly h: number;
}

/** Grouped bars: one group per connection count, one bar per system; the value printed over each bar. */
function bars(
  out: string[],
  p: Panel,
  title: string,
  groups: readonly number[],
  systems: readonly SystemName[],
  value: (s: SystemName, c: number) => number | null,
  label: (v: number) => string,
): void {
  const top = Math.max(1e-9, ...groups.flatMap((c) => systems.map((s) => value(s, c) ?? 0)));
  // Headroom above the tallest bar for its label.
  const max = top * 1.15;
  const groupW = p.w / groups.length;
  const barW = (groupW * 0.7) / systems.length;
  out.push(
    `<text x="${p.x}" y="${p.y - 8}" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${p.x}" y1="${p.y + p.h}" x2="${p.x + p.w}" y2="${p.y + p.h}" stroke="black"/>`,
    `<line x1="${p.x}" y1="${p.y}" x2="${p.x}" y2="${p.y + p.h}" stroke="black"/>`,
    `<line x1="${p.x - 3}" y1="${(p.y + p.h - (top / max) * p.h).toFixed(1)}" x2="${p.x}" y2="${(p.y + p.h - (top / max) * p.h).toFixed(1)}" stroke="black"/>`,
    `<text x="${p.x - 5}" y="${(p.y + p.h - (top / max) * p.h + 4).toFixed(1)}" text-anchor="end">${esc(label(top))}</text>`,
    `<text x="${p.x - 5}" y="${p.y + p.h}" text-anchor="end">0</text>`,
  );
  groups.forEach((c, g) => {
    const gx = p.x + g * groupW + groupW * 0.15;
    systems.forEach((s, i) => {
      const v = value(s, c);
      if (v === null) return;
      const bh = (v / max) * p.h;
      const bx = gx + i * barW;
      out.push(
        `<rect x="${bx.toFixed(1)}" y="${(p.y + p.h - bh).toFixed(1)}" width="${(barW - 1).toFixed(1)}" height="${bh.toFixed(1)}" fill="${colors[s]}"/>`,
        `<text x="${(bx + barW / 2).toFixed(1)}" y="${(p.y + p.h - bh - 3).toFixed(1)}" font-size="9" text-anchor="middle">${esc(label(v))}</text>`,
      );
    });
    out.push(
      `<text x="${(p.x + (g + 0.5) * groupW).toFixed(1)}" y="${p.y + p.h + 14}" text-anchor="middle">${c} conn</text>`,
    );
  });
}

/** Cumulative distribution of each series: the share of trials done by x ms. */
function cdf(
  out: string[],
  p: Panel,
  title: string,
  series: readonly { name: string; color: string; dashed: boolean; values: readonly number[] }[],
): void {
  const step = niceStep(Math.max(1, ...series.flatMap((s) => s.values)) / 8);
  const max = Math.ceil(Math.max(1, ...series.flatMap((s) => s.values)) / step) * step;
  const x = (ms: number) => p.x + (ms / max) * p.w;
  const y = (f: number) => p.y + p.h - f * p.h;
  out.push(
    `<text x="${p.x}" y="${p.y - 8}" font-weight="bold">${esc(title)}</text>`,
    `<line x1="${p.x}" y1="${p.y + p.h}" x2="${p.x + p.w}" y2="${p.y + p.h}" stroke="black"/>`,
    `<line x1="${p.x}" y1="${p.y}" x2="${p.x}" y2="${p.y + p.h}" stroke="black"/>`,
    `<text x="${p.x - 4}" y="${p.y + 4}" text-anchor="end">100%</text>`,
    `<text x="${p.x - 4}" y="${p.y + p.h}" text-anchor="end">0</text>`,
    `<text x="${p.x - 4}" y="${p.y + p.h / 2 + 4}" text-anchor="end">50%</text>`,
    `<line x1="${p.x}" y1="${y(0.5)}" x2="${p.x + p.w}" y2="${y(0.5)}" stroke="#ddd"/>`,
  );
  for (let ms = 0; ms <= max; ms += step) {
    out.push(
      `<line x1="${x(ms).toFixed(1)}" y1="${p.y + p.h}" x2="${x(ms).toFixed(1)}" y2="${p.y + p.h + 3}" stroke="black"/>`,
      `<text x="${x(ms).toFixed(1)}" y="${p.y + p.h + 14}" text-anchor="middle">${ms} ms</text>`,
    );
  }
  series.forEach((s, i) => {
    const sorted = [...s.values].sort((a, b) => a - b);
    if (sorted.length > 0) {
      const points = [`${x(0).toFixed(1)},${y(0).toFixed(1)}`];
      sorted.forEach((v, k) => {
        points.push(`${x(v).toFixed(1)},${y(k / sorted.length).toFixed(1)}`);
        points.push(`${x(v).toFixed(1)},${y((k + 1) / sorted.length).toFixed(1)}`);
      });
      out.push(
        `<polyline points="${points.join(' ')}" fill="none" stroke="${s.color}" stroke-width="1.5"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    // The legend sits bottom right, where cumulative curves have already risen.
    const ly = p.y + p.h - 10 - (series.length - 1 - i) * 14;
    out.push(
      `<line x1="${p.x + p.w - 190}" y1="${ly - 4}" x2="${p.x + p.w - 170}" y2="${ly - 4}" stroke="${s.color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      `<text x="${p.x + p.w - 165}" y="${ly}">${esc(s.name)} (${sorted.length})</text>`,
    );
  });
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const power = 10 ** Math.floor(Math.log10(Math.max(raw, 1e-9)));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
}

export function renderBenchChart(options: {
  readonly title: string;
  readonly subtitle: string;
  readonly cells: readonly CellResult[];
  readonly workloads: readonly WorkloadName[];
  readonly concurrency: readonly number[];
  readonly systems: readonly SystemName[];
  readonly trials: readonly Trial[];
}): string {
  const { cells, systems } = options;
  const shown = options.workloads.filter((w) => cells.some((c) => c.workload === w));
  const width = 1000;
  const rowH = 230;
  const top = 80;
  const failoverH = options.trials.length > 0 ? 260 : 0;
  const height = top + shown.length * rowH + failoverH + 10;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="70" y="20" font-size="14" font-weight="bold">${esc(options.title)}</text>`,
    `<text x="70" y="36" fill="#444">${esc(options.subtitle)}</text>`,
  ];
  systems.forEach((s, i) => {
    out.push(
      `<rect x="${800 + i * 90}" y="10" width="10" height="10" fill="${colors[s]}"/>`,
      `<text x="${814 + i * 90}" y="19">${s}</text>`,
    );
  });
  const result = (s: SystemName, w: WorkloadName, c: number) =>
    cells.find((r) => r.system === s && r.workload === w && r.connections === c)?.result ?? null;
  shown.forEach((w, i) => {
    const y = top + i * rowH;
    bars(
      out,
      { x: 70, y, w: 400, h: 170 },
      `${w}: requests/s`,
      options.concurrency,
      systems,
      (s, c) => result(s, w, c)?.okPerSecond ?? null,
      formatRate,
    );
    bars(
      out,
      { x: 570, y, w: 400, h: 170 },
      `${w}: p99 latency (ms)`,
      options.concurrency,
      systems,
      (s, c) => result(s, w, c)?.latencyMs.p99 ?? null,
      formatMs,
    );
  });
  if (failoverH > 0) {
    const values = (s: SystemName, pick: (t: Trial) => number | null) =>
      options.trials
        .filter((t) => t.system === s)
        .map(pick)
        .filter((v): v is number => v !== null);
    cdf(
      out,
      { x: 70, y: top + shown.length * rowH + 20, w: 900, h: 200 },
      'failover: share of trials done, by ms after kill -9 of the leader',
      systems.flatMap((s) => [
        { name: `${s}: new leader`, color: colors[s], dashed: false, values: values(s, (t) => t.leaderMs) },
        { name: `${s}: first write`, color: colors[s], dashed: true, values: values(s, (t) => t.writeMs) },
      ]),
    );
  }
  out.push('</svg>');
  return out.join('\n') + '\n';
}
