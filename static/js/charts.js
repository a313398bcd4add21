// Renders every <canvas data-chart="ID"> from the JSON spec in <script id="ID" type="application/json">
// (written by Django's json_script). Specs are built server-side by proactive/charts.py; this file only
// maps them to Chart.js (static/vendor/chart.umd.min.js) and re-runs after HTMX swaps.
(function () {
  "use strict";
  const COLORS = {
    blue: "#2f5bea", green: "#1a7f4b", red: "#c0352b", orange: "#d97a00", grey: "#8a93a6",
    purple: "#7a4fd6", teal: "#138a8a", pink: "#c2417f", olive: "#7c8a1a", brown: "#8a5a2b",
  };
  const ORDER = ["blue", "orange", "green", "purple", "red", "teal", "pink", "olive", "brown", "grey"];

  function color(name, i) {
    return COLORS[name] || name || COLORS[ORDER[i % ORDER.length]];
  }

  function alpha(hex, a) {
    const n = parseInt(hex.slice(1), 16);
    return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${a})`;
  }

  function formatter(kind) {
    if (kind === "percent") return (v) => (v === null || v === undefined ? "–" : (v * 100).toFixed(Math.abs(v) < 0.1 ? 1 : 0) + "%");
    if (kind === "int") return (v) => (v === null || v === undefined ? "–" : Math.round(v).toLocaleString());
    if (kind === "count") return (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString(undefined, { maximumFractionDigits: 1 }));
    if (kind === "float") return (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(3));
    if (kind === "seconds") return (v) => (v === null || v === undefined ? "–" : Number(v).toFixed(Math.abs(v) < 10 ? 1 : 0) + " s");
    return (v) => (v === null || v === undefined ? "–" : v.toLocaleString());
  }

  function axis(title, kind, extra) {
    const fmt = formatter(kind);
    return Object.assign(
      {
        title: { display: !!title, text: title || "", color: "#4a5263", font: { size: 12, weight: "600" } },
        // Without a format, keep Chart.js's own tick callback (it maps category indexes to labels).
        // Whole-number axes step by whole numbers: 0.2 steps rounded read "0 0 1 1 1 2".
        ticks: kind
          ? Object.assign({ color: "#4a5263", callback: function (v) { return fmt(v); } }, kind === "int" ? { precision: 0 } : {})
          : { color: "#4a5263" },
        grid: { color: "#eceff4" },
      },
      extra || {},
    );
  }

  function build(spec) {
    const horizontal = spec.kind === "hbar";
    const xy = spec.kind === "xy";
    const type = spec.kind === "line" || xy ? "line" : "bar";
    const valueFmt = formatter(spec.y_format);
    const datasets = spec.series.map(function (s, i) {
      const c = color(s.color, i);
      const ds = {
        label: s.label,
        data: s.data,
        borderColor: c,
        backgroundColor: type === "bar" ? alpha(c, 0.75) : c,
        borderWidth: type === "bar" ? 0 : 2,
        pointRadius: s.points === false ? 0 : type === "line" ? 2.5 : 0,
        pointHoverRadius: 5,
        spanGaps: true,
        tension: 0.15,
      };
      if (s.type) ds.type = s.type;
      if (s.dashed) ds.borderDash = [6, 4];
      if (s.stack) ds.stack = s.stack;
      if (s.band) {
        // The lower and upper edges of an interval: no line, the upper one filled down to the lower.
        ds.borderWidth = 0;
        ds.pointRadius = 0;
        ds.pointHoverRadius = 0;
        ds.backgroundColor = alpha(c, 0.15);
        ds.fill = s.band === "upper" ? "-1" : false;
      }
      if (xy) ds.showLine = s.line !== false;
      return ds;
    });
    const xAxis = xy
      ? axis(spec.x, spec.x_format, { type: "linear", min: spec.x_min, max: spec.x_max })
      : axis(spec.x, horizontal ? spec.y_format : null, { stacked: !!spec.stacked });
    const yAxis = axis(spec.y, horizontal ? null : spec.y_format, {
      stacked: !!spec.stacked, min: spec.y_min, max: spec.y_max, beginAtZero: spec.y_min === undefined,
      suggestedMin: spec.y_suggested_min, suggestedMax: spec.y_suggested_max,
    });
    if (horizontal) xAxis.beginAtZero = true;
    return {
      type: type,
      data: { labels: spec.labels || undefined, datasets: datasets },
      options: {
        indexAxis: horizontal ? "y" : "x",
        responsive: true,
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: xy ? "nearest" : "index", intersect: false },
        scales: { x: xAxis, y: yAxis },
        plugins: {
          legend: {
            display: spec.series.filter((s) => !s.band).length > 1,
            labels: { filter: (item, data) => !spec.series[item.datasetIndex].band, boxWidth: 14 },
          },
          tooltip: {
            filter: (item) => !spec.series[item.datasetIndex].band || spec.band_tooltip,
            callbacks: {
              title: xy
                ? (items) => (items.length ? (spec.x || "x") + ": " + formatter(spec.x_format)(items[0].parsed.x) : "")
                : undefined,
              label: function (item) {
                const s = spec.series[item.datasetIndex];
                const v = horizontal ? item.parsed.x : item.parsed.y;
                let text = (s.label ? s.label + ": " : "") + valueFmt(v);
                if (s.counts && s.counts[item.dataIndex] !== undefined && s.counts[item.dataIndex] !== null) {
                  text += " (" + s.counts[item.dataIndex] + ")";
                }
                return text;
              },
            },
          },
        },
      },
    };
  }

  function render(root) {
    if (!window.Chart) return;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.rendered) return;
      const source = document.getElementById(canvas.dataset.chart);
      if (!source) return;
      canvas.dataset.rendered = "1";
      new window.Chart(canvas, build(JSON.parse(source.textContent)));
    });
  }

  document.addEventListener("DOMContentLoaded", function () { render(document); });
  document.addEventListener("htmx:afterSettle", function () { render(document); });
})();
