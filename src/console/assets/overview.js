// Small uPlot charts for the overview; the numbers come from /overview/data (same session, same origin).
(() => {
  const root = document.getElementById('charts');
  if (!root || typeof uPlot === 'undefined') return;
  const css = getComputedStyle(document.documentElement);
  const accent = css.getPropertyValue('--accent').trim() || '#2563eb';
  const bad = css.getPropertyValue('--bad').trim() || '#b91c1c';
  const warn = css.getPropertyValue('--wait').trim() || '#b45309';
  const HOUR = 3600;

  function size(element) {
    return { width: Math.max(240, element.clientWidth), height: 170 };
  }

  function hours(since, until) {
    const first = Math.floor(since / 3600000) * HOUR;
    const last = Math.floor(until / 3600000) * HOUR;
    const list = [];
    for (let t = first; t <= last; t += HOUR) list.push(t);
    return list;
  }

  /** Hours without data are 0 for counts and gaps (null) for measurements. */
  function series(list, points, pick, missing = 0) {
    const byHour = new Map(points.map((p) => [p.hour / 1000, pick(p)]));
    return list.map((t) => byHour.get(t) ?? missing);
  }

  function bars(element, labels, values, color) {
    const xs = labels.map((_, i) => i);
    return new uPlot(
      {
        ...size(element),
        legend: { show: false },
        cursor: { show: false },
        scales: { x: { time: false, range: [-0.6, Math.max(labels.length - 0.4, 0.6)] } },
        axes: [
          { values: (_u, ticks) => ticks.map((t) => (Number.isInteger(t) ? (labels[t] ?? '') : '')), splits: () => xs },
          {},
        ],
        series: [
          {},
          { stroke: color, fill: color, paths: uPlot.paths.bars({ size: [0.6, 64] }), points: { show: false } },
        ],
      },
      [xs, values],
      element,
    );
  }

  async function draw() {
    const answer = await fetch(root.dataset.url, { credentials: 'same-origin' });
    if (!answer.ok) return;
    const data = await answer.json();
    const list = hours(data.since, data.until);
    const exportsEl = document.getElementById('chart-exports');
    new uPlot(
      {
        ...size(exportsEl),
        legend: { show: false },
        series: [{}, { label: 'exports', stroke: accent, fill: `${accent}22`, width: 2 }],
      },
      [list, series(list, data.exportsPerHour, (p) => p.count)],
      exportsEl,
    );
    const latencyEl = document.getElementById('chart-latency');
    new uPlot(
      {
        ...size(latencyEl),
        legend: { live: false },
        series: [
          {},
          { label: 'average (s)', stroke: accent, width: 2, points: { size: 6 } },
          { label: 'longest (s)', stroke: warn, width: 1, dash: [4, 4], points: { size: 6 } },
        ],
      },
      [
        list,
        series(list, data.ackLatencyPerHour, (p) => p.averageMs / 1000, null),
        series(list, data.ackLatencyPerHour, (p) => p.maxMs / 1000, null),
      ],
      latencyEl,
    );
    bars(
      document.getElementById('chart-failures'),
      data.failuresByReason.map((f) => f.reason),
      data.failuresByReason.map((f) => f.count),
      bad,
    );
    bars(
      document.getElementById('chart-pending'),
      data.pendingDeliveries.map((p) => p.kind),
      data.pendingDeliveries.map((p) => p.count),
      warn,
    );
    root.dataset.drawn = 'true';
  }
  draw().catch(() => {
    root.dataset.drawn = 'failed';
  });
})();
