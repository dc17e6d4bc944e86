// chart.svg: completed operations per second (ok against fail/unknown) and p50/p99 latency per second of the
// successful ones, with the fault windows shaded and labelled. Plain SVG, written by hand.

import type { TimelineEvent } from './nemesis.js';
import type { Completion } from './workload.js';

export interface Second {
  readonly second: number;
  readonly ok: number;
  readonly failed: number;
  readonly p50: number | null;
  readonly p99: number | null;
}

function percentile(sorted: readonly number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

/** Completions bucketed by the second in which they ended. */
export function perSecond(completions: readonly Completion[], durationMs: number): Second[] {
  const seconds = Math.max(1, Math.ceil(durationMs / 1000));
  const buckets = Array.from({ length: seconds }, () => ({ ok: 0, failed: 0, latencies: [] as number[] }));
  for (const c of completions) {
    const b = buckets[Math.min(seconds - 1, Math.max(0, Math.floor(c.end / 1000)))]!;
    if (c.status === 'ok') {
      b.ok++;
      b.latencies.push(c.latencyMs);
    } else b.failed++;
  }
  return buckets.map((b, second) => {
    const sorted = b.latencies.sort((x, y) => x - y);
    return { second, ok: b.ok, failed: b.failed, p50: percentile(sorted, 50), p99: percentile(sorted, 99) };
  });
}

/** Fault windows [start, stop] in ms, from the timeline (an unmatched start lasts until `endMs`). */
export function faultWindows(
  timeline: readonly TimelineEvent[],
  endMs: number,
): { start: number; stop: number; label: string }[] {
  const windows: { start: number; stop: number; label: string }[] = [];
  const open = new Map<string, { start: number; label: string }>();
  for (const e of timeline) {
    if (e.action === 'start') {
      const what =
        typeof e.detail['node'] === 'string'
          ? ` ${e.detail['node']}`
          : typeof e.detail['shape'] === 'string'
            ? ` ${e.detail['shape']}`
            : '';
      open.set(e.kind, { start: e.time, label: `${e.kind}${what}` });
    } else {
      const o = open.get(e.kind);
      if (o !== undefined) windows.push({ ...o, stop: e.time });
      open.delete(e.kind);
    }
  }
  for (const o of open.values()) windows.push({ ...o, stop: endMs });
  return windows.sort((a, b) => a.start - b.start);
}

const colors: Record<string, string> = {
  kill: '#f4a3a3',
  pause: '#f7d08a',
  partition: '#a9c8f0',
  delay: '#c9b3ec',
  drop: '#b5e0b5',
  'crash-all': '#f08080',
};

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function renderChart(
  completions: readonly Completion[],
  timeline: readonly TimelineEvent[],
  durationMs: number,
  title: string,
  marks: readonly { time: number; label: string }[] = [],
): string {
  const data = perSecond(completions, durationMs);
  const width = 1000;
  const left = 60;
  const right = 20;
  const plotW = width - left - right;
  const top1 = 40;
  const h1 = 200;
  const top2 = top1 + h1 + 50;
  const h2 = 160;
  const height = top2 + h2 + 50;
  const seconds = data.length;
  const x = (ms: number) => left + (ms / 1000 / seconds) * plotW;
  const maxOps = Math.max(1, ...data.map((d) => d.ok + d.failed));
  const maxLat = Math.max(1, ...data.map((d) => d.p99 ?? 0));
  const y1 = (v: number) => top1 + h1 - (v / maxOps) * h1;
  const y2 = (v: number) => top2 + h2 - (v / maxLat) * h2;
  const barW = Math.max(1, plotW / seconds - 1);
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`,
  );
  // Fault windows behind both panels.
  for (const w of faultWindows(timeline, durationMs)) {
    const fill = colors[w.label.split(' ')[0]!] ?? '#dddddd';
    const wx = x(w.start);
    const ww = Math.max(1, x(w.stop) - wx);
    for (const [top, h] of [
      [top1, h1],
      [top2, h2],
    ] as const) {
      out.push(
        `<rect x="${wx.toFixed(1)}" y="${top}" width="${ww.toFixed(1)}" height="${h}" fill="${fill}" opacity="0.45"/>`,
      );
    }
    out.push(
      `<text x="${(wx + 2).toFixed(1)}" y="${top1 + 10}" font-size="9" fill="#333">${esc(w.label)}</text>`,
    );
  }
  for (const [i, m] of marks.entries()) {
    const mx = x(m.time).toFixed(1);
    const my = top1 - 4 - (i % 2) * 10;
    out.push(
      `<line x1="${mx}" y1="${top1}" x2="${mx}" y2="${top2 + h2}" stroke="#444" stroke-dasharray="4 3"/>`,
      `<text x="${mx}" y="${my}" font-size="9" text-anchor="middle">${esc(m.label)}</text>`,
    );
  }
  // Panel 1: stacked bars.
  for (const d of data) {
    const bx = x(d.second * 1000).toFixed(1);
    if (d.ok > 0) {
      out.push(
        `<rect x="${bx}" y="${y1(d.ok).toFixed(1)}" width="${barW.toFixed(1)}" height="${(top1 + h1 - y1(d.ok)).toFixed(1)}" fill="#2e8b57"/>`,
      );
    }
    if (d.failed > 0) {
      const yTop = y1(d.ok + d.failed);
      out.push(
        `<rect x="${bx}" y="${yTop.toFixed(1)}" width="${barW.toFixed(1)}" height="${(y1(d.ok) - yTop).toFixed(1)}" fill="#d9534f"/>`,
      );
    }
  }
  // Panel 2: latency lines.
  const line = (pick: (d: Second) => number | null, color: string) => {
    const points = data
      .filter((d) => pick(d) !== null)
      .map((d) => `${x(d.second * 1000 + 500).toFixed(1)},${y2(pick(d)!).toFixed(1)}`);
    if (points.length > 0) {
      out.push(`<polyline points="${points.join(' ')}" fill="none" stroke="${color}" stroke-width="1.5"/>`);
    }
  };
  line((d) => d.p50, '#1f77b4');
  line((d) => d.p99, '#ff7f0e');
  // Axes, ticks and legends.
  for (const [top, h, max, unit] of [
    [top1, h1, maxOps, 'ops/s'],
    [top2, h2, maxLat, 'ms'],
  ] as const) {
    out.push(
      `<line x1="${left}" y1="${top + h}" x2="${left + plotW}" y2="${top + h}" stroke="black"/>`,
      `<line x1="${left}" y1="${top}" x2="${left}" y2="${top + h}" stroke="black"/>`,
      `<text x="${left - 4}" y="${top + 4}" text-anchor="end">${Math.round(max)}</text>`,
      `<text x="${left - 4}" y="${top + h}" text-anchor="end">0</text>`,
      `<text x="${left - 4}" y="${top + h / 2}" text-anchor="end">${unit}</text>`,
    );
    const step = Math.max(1, Math.ceil(seconds / 20));
    for (let s = 0; s <= seconds; s += step) {
      out.push(`<text x="${x(s * 1000).toFixed(1)}" y="${top + h + 14}" text-anchor="middle">${s}s</text>`);
    }
  }
  out.push(
    `<rect x="${left + plotW - 190}" y="${top1 - 28}" width="10" height="10" fill="#2e8b57"/>`,
    `<text x="${left + plotW - 176}" y="${top1 - 19}">ok</text>`,
    `<rect x="${left + plotW - 150}" y="${top1 - 28}" width="10" height="10" fill="#d9534f"/>`,
    `<text x="${left + plotW - 136}" y="${top1 - 19}">fail / unknown</text>`,
    `<text x="${left}" y="${top2 - 8}">latency of ok operations per second:</text>`,
    `<line x1="${left + 200}" y1="${top2 - 12}" x2="${left + 220}" y2="${top2 - 12}" stroke="#1f77b4" stroke-width="2"/>`,
    `<text x="${left + 224}" y="${top2 - 8}">p50</text>`,
    `<line x1="${left + 260}" y1="${top2 - 12}" x2="${left + 280}" y2="${top2 - 12}" stroke="#ff7f0e" stroke-width="2"/>`,
    `<text x="${left + 284}" y="${top2 - 8}">p99</text>`,
    `<text x="${left + plotW / 2}" y="${height - 10}" text-anchor="middle">seconds since the run began (shaded: fault windows)</text>`,
    '</svg>',
  );
  return out.join('\n') + '\n';
}
