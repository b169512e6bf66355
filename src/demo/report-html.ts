/**
 * The `esper demo` record as one self-contained HTML page: summary figures, the config, loss /
 * accuracy / parameter charts, each seed's lifecycle as a timeline, Tamiyo's decision log and the
 * alerts. The page loads nothing (no scripts, fonts, images or stylesheets from anywhere) so it
 * can be mailed, archived or opened offline; hover tooltips are SVG `<title>`s, which need no JS.
 * Reasons and errors come from the network, so every string from the record is escaped here.
 */
import { SEED_STATES, type SeedState } from "../../machines/lifecycle.ts";
import type { AlertEntry, DecisionEntry, DemoRecord, EpochPoint, SeedTimeline } from "./record.ts";

export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);

// ---------------------------------------------------------------------------------------------
// Number formatting: every formatter prints "n/a" for NaN / ±Infinity rather than "NaN%".

const NA = "n/a";
const finite = (n: number): boolean => Number.isFinite(n);
const fixed = (n: number, digits: number): string => (finite(n) ? n.toFixed(digits) : NA);
const percent = (fraction: number): string => (finite(fraction) ? `${(fraction * 100).toFixed(1)}%` : NA);
/** 4 significant digits without a trailing-zero tail: 0.1 not 0.1000, 123500 not 1.235e+5. */
const sig4 = (n: number): string => (finite(n) ? String(Number(n.toPrecision(4))) : NA);
const count = (n: number): string => (finite(n) ? Math.round(n).toLocaleString("en-US") : NA);
const compact = (n: number): string => {
  if (!finite(n)) return NA;
  const abs = Math.abs(n);
  if (abs >= 1e6) return `${sig4(n / 1e6)}M`;
  if (abs >= 1e3) return `${sig4(n / 1e3)}k`;
  return sig4(n);
};
const signedPts = (pts: number): string => (finite(pts) ? `${pts > 0 ? "+" : ""}${pts.toFixed(1)} pts` : NA);
const seedRef = (layerId: string, seedId: number | null): string => `${layerId}/${seedId ?? "—"}`;

// ---------------------------------------------------------------------------------------------
// Colours: one fixed colour per lifecycle state, shared by the timeline and the chart markers so a
// red line on the loss chart means the same thing as a red bar on the timeline.

export const STATE_COLORS: Readonly<Record<SeedState, string>> = {
  DORMANT: "#d0d0d0",
  GERMINATED: "#a6d96a",
  TRAINING: "#1a9850",
  GRAFTING: "#fdae61",
  STABILIZATION: "#e6c229",
  EVALUATING: "#74add1",
  FINE_TUNING: "#4575b4",
  FOSSILIZED: "#313695",
  CULLED: "#d73027",
  CANCELLED: "#8c8c8c",
  ROLLED_BACK: "#f46d43",
};
const TRAIN = "#1f77b4";
const VAL = "#ff7f0e";
const HOST = "#7f7f7f";
const GROWN = "#2ca02c";

// ---------------------------------------------------------------------------------------------
// Building blocks.

/** A table cell is text (escaped here) unless the caller hands over markup it built itself. */
export type Cell = string | { readonly html: string };
const cellHtml = (cell: Cell): string => (typeof cell === "string" ? escapeHtml(cell) : cell.html);

export const table = (className: string, headers: readonly string[], rows: readonly (readonly Cell[])[]): string =>
  `<table class="${className}"><thead><tr>${headers.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>` +
  `<tbody>${rows.map((r) => `<tr>${r.map((c) => `<td>${cellHtml(c)}</td>`).join("")}</tr>`).join("\n")}</tbody></table>`;

interface LegendItem {
  readonly label: string;
  readonly color: string;
  readonly style: "solid" | "dashed" | "box";
}
const legend = (items: readonly LegendItem[]): string =>
  `<div class="legend">${items
    .map((i) => `<span><i class="sw ${i.style}" style="border-color:${i.color}"></i>${escapeHtml(i.label)}</span>`)
    .join("")}</div>`;

/** Round tick values onto a 1-2-5 grid that covers [lo, hi]. */
const niceTicks = (lo: number, hi: number, target = 5, minStep = 0): number[] => {
  const raw = Math.max((hi - lo) / target, minStep, Number.EPSILON);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max([1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw)!, minStep);
  const ticks: number[] = [];
  for (let v = Math.floor(lo / step) * step; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
};

/** A domain that is never empty, so a flat or missing series still gets an axis. */
const extent = (values: readonly number[], fromZero: boolean): [number, number] => {
  const xs = values.filter(finite);
  if (fromZero) xs.push(0);
  if (xs.length === 0) return [0, 1];
  const lo = Math.min(...xs);
  const hi = Math.max(...xs);
  if (lo === hi) return [lo - (Math.abs(lo) * 0.05 || 1), hi + (Math.abs(hi) * 0.05 || 1)];
  return [lo, hi];
};

export interface Series {
  readonly name: string;
  readonly color: string;
  readonly dashed: boolean;
  readonly points: readonly (readonly [x: number, y: number])[];
}
export interface Marker {
  readonly x: number;
  readonly color: string;
  readonly label: string;
}
export interface ChartSpec {
  readonly id: string;
  readonly xLabel: string;
  readonly yLabel: string;
  readonly series: readonly Series[];
  readonly markers?: readonly Marker[];
  readonly yFormat: (n: number) => string;
  readonly yFromZero?: boolean;
}

const W = 680;
const H = 260;
const M = { top: 12, right: 16, bottom: 40, left: 64 };
const r1 = (n: number): string => (Math.round(n * 10) / 10).toString();

/** An SVG line chart; a non-finite point breaks its series' line instead of bending it to 0. */
export const lineChart = (spec: ChartSpec): string => {
  const pts = spec.series.flatMap((s) => s.points);
  const xTicks = niceTicks(...extent([...pts.map((p) => p[0]), ...(spec.markers ?? []).map((m) => m.x)], true), 8, 1);
  const yTicks = niceTicks(...extent(pts.map((p) => p[1]), spec.yFromZero ?? false), 5);
  const [x0, x1] = [xTicks[0]!, xTicks[xTicks.length - 1]!];
  const [y0, y1] = [yTicks[0]!, yTicks[yTicks.length - 1]!];
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const sx = (x: number): number => M.left + ((x - x0) / (x1 - x0 || 1)) * pw;
  const sy = (y: number): number => M.top + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
  const bottom = M.top + ph;

  const grid = [
    ...yTicks.map(
      (t) =>
        `<line class="grid" x1="${M.left}" x2="${W - M.right}" y1="${r1(sy(t))}" y2="${r1(sy(t))}"/>` +
        `<text class="tick" x="${M.left - 6}" y="${r1(sy(t) + 4)}" text-anchor="end">${escapeHtml(spec.yFormat(t))}</text>`,
    ),
    ...xTicks.map(
      (t) =>
        `<line class="axis" x1="${r1(sx(t))}" x2="${r1(sx(t))}" y1="${bottom}" y2="${bottom + 5}"/>` +
        `<text class="tick" x="${r1(sx(t))}" y="${bottom + 18}" text-anchor="middle">${escapeHtml(String(t))}</text>`,
    ),
  ].join("");
  const axes =
    `<line class="axis" x1="${M.left}" x2="${W - M.right}" y1="${bottom}" y2="${bottom}"/>` +
    `<line class="axis" x1="${M.left}" x2="${M.left}" y1="${M.top}" y2="${bottom}"/>` +
    `<text class="label" x="${M.left + pw / 2}" y="${H - 4}" text-anchor="middle">${escapeHtml(spec.xLabel)}</text>` +
    `<text class="label" transform="translate(14 ${M.top + ph / 2}) rotate(-90)" text-anchor="middle">${escapeHtml(spec.yLabel)}</text>`;
  const markers = (spec.markers ?? [])
    .filter((m) => finite(m.x))
    .map(
      (m) =>
        `<line class="marker" x1="${r1(sx(m.x))}" x2="${r1(sx(m.x))}" y1="${M.top}" y2="${bottom}" stroke="${m.color}">` +
        `<title>${escapeHtml(m.label)}</title></line>`,
    )
    .join("");
  const series = spec.series.map((s) => {
    let d = "";
    let pen = false;
    const dots: string[] = [];
    for (const [x, y] of s.points) {
      if (!finite(x) || !finite(y)) {
        pen = false;
        continue;
      }
      d += `${pen ? "L" : "M"}${r1(sx(x))} ${r1(sy(y))}`;
      pen = true;
      dots.push(
        `<circle cx="${r1(sx(x))}" cy="${r1(sy(y))}" r="2.5" fill="${s.color}">` +
          `<title>${escapeHtml(`${s.name}: epoch ${x}, ${spec.yFormat(y)}`)}</title></circle>`,
      );
    }
    const dash = s.dashed ? ` stroke-dasharray="6 4"` : "";
    return (
      `<g class="series-group"><path class="series" data-series="${escapeHtml(s.name)}" d="${d}" stroke="${s.color}"${dash}/>` +
      `${dots.join("")}</g>`
    );
  });
  return (
    `<svg class="chart" data-chart="${escapeHtml(spec.id)}" viewBox="0 0 ${W} ${H}" role="img">` +
    `${grid}${axes}${markers}${series.join("")}</svg>`
  );
};

// ---------------------------------------------------------------------------------------------
// Sections.

const LIFECYCLE_MARKS: readonly SeedState[] = ["GERMINATED", "FOSSILIZED", "CULLED"];

const seedMarkers = (seeds: readonly SeedTimeline[]): Marker[] =>
  seeds.flatMap((seed) =>
    seed.steps
      .filter((step) => LIFECYCLE_MARKS.includes(step.state))
      .map((step) => ({
        x: step.epoch,
        color: STATE_COLORS[step.state],
        label: `${seed.layerId}/seed ${seed.seedId} ${step.state.toLowerCase()} at epoch ${fixed(step.epoch, 2)}`,
      })),
  );

const runSeries = (
  epochs: readonly EpochPoint[],
  name: string,
  color: string,
  dashed: boolean,
  y: (e: EpochPoint) => number,
): Series => ({ name, color, dashed, points: epochs.map((e) => [e.epoch, y(e)] as const) });

const figure = (label: string, value: string, sub = "", tone = ""): string =>
  `<div class="fig${tone ? ` ${tone}` : ""}"><div class="v">${escapeHtml(value)}</div><div class="k">${escapeHtml(label)}</div>` +
  `${sub ? `<div class="s">${escapeHtml(sub)}</div>` : ""}</div>`;

const header = (record: DemoRecord): string => {
  const s = record.summary;
  const ratio = s.paramsHost > 0 ? `×${fixed(s.paramsGrown / s.paramsHost, 2)}` : NA;
  const tone = finite(s.deltaPts) ? (s.deltaPts > 0 ? "up" : s.deltaPts < 0 ? "down" : "") : "";
  return (
    `<header><h1>${escapeHtml(record.title)}</h1><p class="when">started ${escapeHtml(record.startedAt)}</p>` +
    `<div class="figs">` +
    figure("host accuracy", percent(s.hostAcc)) +
    figure("grown accuracy", percent(s.grownAcc)) +
    figure("delta", signedPts(s.deltaPts), "", tone) +
    figure("parameters", `${count(s.paramsHost)} → ${count(s.paramsGrown)}`, `ratio ${ratio}`) +
    figure("seeds", `${count(s.germinated)} / ${count(s.fossilized)} / ${count(s.culled)}`, "germinated / fossilized / culled") +
    `</div></header>`
  );
};

const section = (id: string, title: string, body: string): string =>
  `<section id="${id}"><h2>${escapeHtml(title)}</h2>${body}</section>`;

/** A section holding one table of `items`, or a line saying there are none. */
const tableSection = <T>(id: string, title: string, empty: string, headers: readonly string[], items: readonly T[], row: (item: T) => readonly Cell[]): string =>
  section(id, title, items.length === 0 ? `<p class="empty">${escapeHtml(empty)}</p>` : table(id, headers, items.map(row)));

const configSection = (record: DemoRecord): string =>
  section(
    "config",
    "Config",
    table(
      "config",
      ["setting", "value"],
      Object.entries(record.config).map(([k, v]) => [k, typeof v === "number" && !finite(v) ? NA : String(v)]),
    ),
  );

const chartsSection = (record: DemoRecord): string => {
  const { host, grown } = record;
  const markers = seedMarkers(record.seeds);
  const markerLegend: LegendItem[] = markers.length
    ? LIFECYCLE_MARKS.map((st) => ({ label: `seed ${st.toLowerCase()}`, color: STATE_COLORS[st], style: "solid" }))
    : [];
  const runLegend: LegendItem[] = [
    { label: `${host.name} (dashed)`, color: HOST, style: "dashed" },
    { label: `${grown.name} (solid)`, color: HOST, style: "solid" },
  ];
  const loss = lineChart({
    id: "loss",
    xLabel: "epoch",
    yLabel: "loss",
    yFromZero: true,
    yFormat: sig4,
    markers,
    series: [
      runSeries(host.epochs, `${host.name} train`, TRAIN, true, (e) => e.trainLoss),
      runSeries(host.epochs, `${host.name} validation`, VAL, true, (e) => e.valLoss),
      runSeries(grown.epochs, `${grown.name} train`, TRAIN, false, (e) => e.trainLoss),
      runSeries(grown.epochs, `${grown.name} validation`, VAL, false, (e) => e.valLoss),
    ],
  });
  const accuracy = lineChart({
    id: "accuracy",
    xLabel: "epoch",
    yLabel: "test accuracy",
    yFormat: percent,
    markers,
    series: [
      runSeries(host.epochs, host.name, HOST, true, (e) => e.testAcc),
      runSeries(grown.epochs, grown.name, GROWN, false, (e) => e.testAcc),
    ],
  });
  const params = lineChart({
    id: "params",
    xLabel: "epoch",
    yLabel: "parameters",
    yFormat: compact,
    series: [
      runSeries(host.epochs, host.name, HOST, true, (e) => e.params),
      runSeries(grown.epochs, grown.name, GROWN, false, (e) => e.params),
    ],
  });
  const fig = (caption: string, svg: string, items: readonly LegendItem[]): string =>
    `<figure><figcaption>${escapeHtml(caption)}</figcaption>${svg}${legend(items)}</figure>`;
  return section(
    "charts",
    "Training",
    fig("Loss per epoch", loss, [
      { label: "train", color: TRAIN, style: "solid" },
      { label: "validation", color: VAL, style: "solid" },
      ...runLegend,
      ...markerLegend,
    ]) +
      fig("Test accuracy per epoch", accuracy, [
        { label: host.name, color: HOST, style: "dashed" },
        { label: grown.name, color: GROWN, style: "solid" },
        ...markerLegend,
      ]) +
      fig("Parameters per epoch", params, [
        { label: host.name, color: HOST, style: "dashed" },
        { label: grown.name, color: GROWN, style: "solid" },
      ]),
  );
};

const lastEpochOf = (record: DemoRecord): number => {
  const all = [
    ...record.host.epochs.map((e) => e.epoch),
    ...record.grown.epochs.map((e) => e.epoch),
    ...record.seeds.flatMap((s) => s.steps.map((st) => st.epoch)),
  ].filter(finite);
  const last = all.length ? Math.max(...all) : 0;
  return last > 0 ? last : 1;
};

/**
 * One row per seed. Each step's state lasts until the next step, the last one until `lastEpoch`,
 * so a fossilized seed's bar ends in FOSSILIZED and a live one's in its current state.
 */
export const timeline = (seeds: readonly SeedTimeline[], lastEpoch: number): string => {
  if (seeds.length === 0) return `<p class="empty">no seeds germinated</p>`;
  const labelW = 250;
  const rowH = 22;
  const barW = W - labelW - M.right;
  const ticks = niceTicks(0, lastEpoch, 8, 1);
  const end = ticks[ticks.length - 1]!;
  const sx = (x: number): number => labelW + (Math.min(Math.max(x, 0), end) / end) * barW;
  const axisY = seeds.length * rowH + 6;
  const rows = seeds.map((seed, i) => {
    const y = i * rowH + 4;
    const steps = seed.steps.filter((st) => finite(st.epoch) && st.state !== "DORMANT");
    const segments = steps.map((st, j) => {
      const from = sx(st.epoch);
      const to = sx(steps[j + 1]?.epoch ?? lastEpoch);
      // A state entered and left within one step, or a terminal state at the very end, would be
      // zero wide; give it a sliver so every state the seed passed through stays visible.
      const w = Math.max(to - from, j === steps.length - 1 ? 4 : 1.5);
      const tip = `${st.state} from epoch ${fixed(st.epoch, 2)}: ${st.reason}`;
      return (
        `<rect class="seg" data-state="${escapeHtml(st.state)}" x="${r1(from)}" y="${y}" width="${r1(w)}" ` +
        `height="${rowH - 6}" fill="${STATE_COLORS[st.state] ?? "#000"}"><title>${escapeHtml(tip)}</title></rect>`
      );
    });
    const label = `${seed.layerId}/seed ${seed.seedId} (${seed.blueprint ?? "no blueprint"})`;
    return (
      `<g class="seed-row"><text class="tick" x="${labelW - 8}" y="${y + rowH / 2 + 1}" text-anchor="end">${escapeHtml(label)}</text>` +
      `<rect class="track" x="${labelW}" y="${y}" width="${barW}" height="${rowH - 6}"/>${segments.join("")}</g>`
    );
  });
  const axis =
    `<line class="axis" x1="${labelW}" x2="${labelW + barW}" y1="${axisY}" y2="${axisY}"/>` +
    ticks
      .map(
        (t) =>
          `<line class="axis" x1="${r1(sx(t))}" x2="${r1(sx(t))}" y1="${axisY}" y2="${axisY + 4}"/>` +
          `<text class="tick" x="${r1(sx(t))}" y="${axisY + 16}" text-anchor="middle">${t}</text>`,
      )
      .join("") +
    `<text class="label" x="${labelW + barW / 2}" y="${axisY + 32}" text-anchor="middle">epoch</text>`;
  const states = SEED_STATES.filter((st) => st !== "DORMANT");
  return (
    `<svg class="timeline" viewBox="0 0 ${W} ${axisY + 38}" role="img">${rows.join("")}${axis}</svg>` +
    legend(states.map((st) => ({ label: st, color: STATE_COLORS[st], style: "box" })))
  );
};

const outcomeCell = (d: DecisionEntry): Cell => {
  if (!d.outcome) return "pending";
  if (d.outcome.success) return { html: `<span class="ok">ok</span>` };
  const text = d.outcome.error ? `${d.outcome.code}: ${d.outcome.error}` : d.outcome.code;
  return { html: `<span class="fail">${escapeHtml(text)}</span>` };
};

const decisionsSection = (decisions: readonly DecisionEntry[]): string =>
  tableSection("decisions", "Tamiyo's decisions", "no decisions", ["epoch", "kind", "layer/seed", "action", "reason", "numbers", "outcome"], decisions, (d) => [
    fixed(d.epoch, 2),
    d.kind,
    seedRef(d.layerId, d.seedId),
    d.action,
    d.reason,
    Object.entries(d.numbers)
      .map(([k, v]) => `${k}=${sig4(v)}`)
      .join(" "),
    outcomeCell(d),
  ]);

const alertsSection = (alerts: readonly AlertEntry[]): string =>
  tableSection("alerts", "Alerts", "no alerts", ["epoch", "layer/seed", "severity", "metric", "value", "threshold", "recommended action"], alerts, (a) => [
    fixed(a.epoch, 2),
    seedRef(a.layerId, a.seedId),
    { html: `<span class="sev-${escapeHtml(a.severity)}">${escapeHtml(a.severity)}</span>` },
    a.metric,
    sig4(a.value),
    sig4(a.threshold),
    a.recommendedAction,
  ]);

const CSS = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;color:#222;max-width:1100px;margin:24px auto;padding:0 16px}
h1{margin:0 0 2px;font-size:24px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.when{color:#666;margin:0 0 12px}
.figs{display:flex;flex-wrap:wrap;gap:12px}
.fig{border:1px solid #ddd;border-radius:6px;padding:10px 16px;min-width:140px}
.fig .v{font-size:26px;font-weight:600}.fig .k{color:#555}.fig .s{color:#888;font-size:12px}
.fig.up .v{color:#1a7f37}.fig.down .v{color:#c62828}
table{border-collapse:collapse;font-size:13px}th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:left;vertical-align:top}
th{background:#f6f6f6}table.decisions td:nth-child(5){max-width:320px}
figure{margin:16px 0}figcaption{font-weight:600;margin-bottom:4px}
svg{display:block;width:100%;max-width:${W}px;height:auto}
svg text{font-size:11px;fill:#333}svg .label{font-size:12px;fill:#555}
.grid{stroke:#eee}.axis{stroke:#888}.track{fill:#f3f3f3}
.series{fill:none;stroke-width:2}.marker{stroke-width:1.5;stroke-dasharray:2 2;opacity:.8}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:12px;color:#444;margin-top:4px}
.sw{display:inline-block;width:18px;margin-right:5px;vertical-align:middle;border-top:2px solid}
.sw.dashed{border-top-style:dashed}.sw.box{width:0;height:0;border:6px solid}
.ok{color:#1a7f37}.fail{color:#c62828}.empty{color:#888;font-style:italic}
.sev-warning{color:#b26a00}.sev-critical{color:#c62828;font-weight:600}
`;

/** The whole page; pure, so the same record always renders to the same bytes. */
export const renderReport = (record: DemoRecord): string =>
  [
    "<!doctype html>",
    `<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">`,
    `<title>${escapeHtml(record.title)}</title><style>${CSS}</style></head><body>`,
    header(record),
    configSection(record),
    chartsSection(record),
    section("lifecycle", "Seed lifecycles", timeline(record.seeds, lastEpochOf(record))),
    decisionsSection(record.decisions),
    alertsSection(record.alerts),
    "</body></html>",
    "",
  ].join("\n");
