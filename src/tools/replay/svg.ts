// Small inline SVG charts for the HTML report: no script, no external resource, so the report opens offline.

export interface Series {
  name: string;
  points: [number, number][];
  color: string;
}

export interface LineChart {
  title: string;
  xLabel: string;
  yLabel: string;
  series: Series[];
  /** Fixed y range (e.g. 0..1 for ratios); otherwise from 0 to the data's maximum. */
  yMax?: number;
  /** Draw each point as a step (for per-interval values). */
  step?: boolean;
  yFormat?: (value: number) => string;
}

export interface BarChart {
  title: string;
  yLabel: string;
  bars: { label: string; value: number }[];
  color: string;
}

const W = 560;
const H = 300;
const M = { left: 64, right: 16, top: 46, bottom: 46 };
const PLOT_W = W - M.left - M.right;
const PLOT_H = H - M.top - M.bottom;

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A round step near range/target: 1, 2 or 5 times a power of ten. */
export function niceStep(range: number, target = 5): number {
  if (!(range > 0)) return 1;
  const raw = range / target;
  const power = 10 ** Math.floor(Math.log10(raw));
  const m = raw / power;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * power;
}

export function formatNumber(value: number): string {
  const a = Math.abs(value);
  if (a >= 1e6) return `${trim(value / 1e6)}M`;
  if (a >= 1e4) return `${trim(value / 1e3)}k`;
  if (a >= 100 || Number.isInteger(value)) return String(Math.round(value));
  return trim(value);
}

function trim(value: number): string {
  return String(Number(value.toPrecision(3)));
}

const f = (n: number) => n.toFixed(1);

function frame(title: string, body: string): string {
  return (
    `<figure class="chart"><svg viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeXml(title)}" xmlns="http://www.w3.org/2000/svg">` +
    `<text x="${W / 2}" y="20" text-anchor="middle" class="title">${escapeXml(title)}</text>${body}</svg></figure>`
  );
}

function noData(title: string): string {
  return frame(title, `<text x="${W / 2}" y="${H / 2}" text-anchor="middle" class="muted">no data</text>`);
}

function axes(xMax: number, yMax: number, xLabel: string, yLabel: string, yFormat: (v: number) => string): string {
  const parts: string[] = [];
  const yStep = niceStep(yMax);
  for (let v = 0; v <= yMax + yStep * 1e-9; v += yStep) {
    const y = M.top + PLOT_H - (v / yMax) * PLOT_H;
    parts.push(`<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${f(y)}" y2="${f(y)}" class="grid"/>`);
    parts.push(`<text x="${M.left - 6}" y="${f(y + 4)}" text-anchor="end" class="tick">${escapeXml(yFormat(v))}</text>`);
  }
  const xStep = niceStep(xMax, 6);
  for (let v = 0; v <= xMax + xStep * 1e-9; v += xStep) {
    const x = M.left + (v / xMax) * PLOT_W;
    parts.push(`<line x1="${f(x)}" x2="${f(x)}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H + 4}" class="axis"/>`);
    parts.push(`<text x="${f(x)}" y="${M.top + PLOT_H + 17}" text-anchor="middle" class="tick">${escapeXml(formatNumber(v))}</text>`);
  }
  parts.push(`<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H}" class="axis"/>`);
  parts.push(`<line x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${M.top + PLOT_H}" class="axis"/>`);
  parts.push(`<text x="${M.left + PLOT_W / 2}" y="${H - 8}" text-anchor="middle" class="label">${escapeXml(xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${M.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" class="label">${escapeXml(yLabel)}</text>`);
  return parts.join("");
}

export function lineChart(spec: LineChart): string {
  const all = spec.series.flatMap((s) => s.points);
  if (all.length === 0) return noData(spec.title);
  const xMaxData = Math.max(...all.map((p) => p[0]));
  const yMaxData = Math.max(...all.map((p) => p[1]));
  const xMax = xMaxData > 0 ? xMaxData : 1;
  const yMax = spec.yMax ?? (yMaxData > 0 ? yMaxData * 1.05 : 1);
  const x = (v: number) => M.left + (v / xMax) * PLOT_W;
  const y = (v: number) => M.top + PLOT_H - (Math.min(v, yMax) / yMax) * PLOT_H;
  const lines = spec.series.map((s) => {
    const pts: string[] = [];
    s.points.forEach(([px, py], i) => {
      if (spec.step && i > 0) pts.push(`${f(x(px))},${f(y(s.points[i - 1]![1]))}`);
      pts.push(`${f(x(px))},${f(y(py))}`);
    });
    const dot = s.points.length === 1 ? `<circle cx="${f(x(s.points[0]![0]))}" cy="${f(y(s.points[0]![1]))}" r="3" fill="${s.color}"/>` : "";
    return `<polyline points="${pts.join(" ")}" fill="none" stroke="${s.color}" stroke-width="1.8" stroke-linejoin="round"/>${dot}`;
  });
  const legend =
    spec.series.length > 1
      ? spec.series
          .map((s, i) => {
            const lx = M.left + i * 150;
            return `<rect x="${lx}" y="${M.top - 14}" width="12" height="3" fill="${s.color}"/><text x="${lx + 16}" y="${M.top - 9}" class="tick">${escapeXml(s.name)}</text>`;
          })
          .join("")
      : "";
  return frame(spec.title, axes(xMax, yMax, spec.xLabel, spec.yLabel, spec.yFormat ?? formatNumber) + lines.join("") + legend);
}

export function barChart(spec: BarChart): string {
  if (spec.bars.length === 0) return noData(spec.title);
  const yMax = Math.max(...spec.bars.map((b) => b.value), 1) * 1.1;
  const slot = PLOT_W / spec.bars.length;
  const barW = Math.max(2, Math.min(60, slot * 0.7));
  const labelEvery = Math.ceil(spec.bars.length / 12);
  const bars = spec.bars.map((b, i) => {
    const h = (b.value / yMax) * PLOT_H;
    const cx = M.left + slot * (i + 0.5);
    const label =
      i % labelEvery === 0
        ? `<text x="${f(cx)}" y="${M.top + PLOT_H + 17}" text-anchor="middle" class="tick">${escapeXml(b.label.length > 14 ? `${b.label.slice(0, 13)}…` : b.label)}</text>`
        : "";
    const value = spec.bars.length <= 16 ? `<text x="${f(cx)}" y="${f(M.top + PLOT_H - h - 4)}" text-anchor="middle" class="tick">${formatNumber(b.value)}</text>` : "";
    return `<rect x="${f(cx - barW / 2)}" y="${f(M.top + PLOT_H - h)}" width="${f(barW)}" height="${f(h)}" fill="${spec.color}"><title>${escapeXml(`${b.label}: ${b.value}`)}</title></rect>${label}${value}`;
  });
  const yStep = niceStep(yMax);
  const grid: string[] = [];
  for (let v = 0; v <= yMax; v += yStep) {
    const gy = M.top + PLOT_H - (v / yMax) * PLOT_H;
    grid.push(`<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${f(gy)}" y2="${f(gy)}" class="grid"/>`);
    grid.push(`<text x="${M.left - 6}" y="${f(gy + 4)}" text-anchor="end" class="tick">${formatNumber(v)}</text>`);
  }
  const axis =
    `<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${M.top + PLOT_H}" y2="${M.top + PLOT_H}" class="axis"/>` +
    `<text transform="translate(14 ${M.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" class="label">${escapeXml(spec.yLabel)}</text>`;
  return frame(spec.title, grid.join("") + axis + bars.join(""));
}
