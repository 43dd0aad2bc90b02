// FMU Gateway: interactive plots (uPlot), for the pages that plot (the run page, the compare
// page). Each `[data-plot]` box holds the server's SVG (the plot without JavaScript) and, in
// `data-plot`, the JSON sources to draw: [{url, label}], each url a `plot.json` that the
// server downsamples to the width asked for, keeping every pixel column's extremes.
//
// What the plot does: one uPlot per unit, stacked, sharing the time axis and the cursor
// (uPlot.sync) and the zoom (drag to zoom, double-click to reset, Shift+drag to pan); the
// legend shows each series' value at the cursor and hides a series when clicked; discrete
// series are drawn as steps; "PNG" exports the stacked canvases. Once drawn, it hides the SVG;
// if anything fails, the SVG stays.
(function () {
  "use strict";

  // The server SVG's palette (src/web/charts.rs), so both plots look alike.
  var PALETTE = ["#60a5fa", "#fbbf24", "#34d399", "#f472b6", "#a78bfa", "#22d3ee"];
  var TEXT = "#cbd5e1";
  var GRID = "#1e293b";
  var AXIS = "#64748b";
  var FONT = "12px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  var BACKGROUND = "#17222e";
  var syncKeys = 0;

  function fmt(v) {
    if (v == null) return "—";
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e6)) return v.toExponential(3);
    return String(Math.round(v * 1e4) / 1e4);
  }

  // A short tick label ("0.25", "12k" is not used: "1.2e4", "-2.1e9"), so the y axis keeps
  // its width on a phone whatever the magnitude.
  function tick(v) {
    var a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e5)) {
      return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
    }
    return String(+v.toPrecision(6));
  }

  function label(prefix, name, unit) {
    var text = unit ? name + " [" + unit + "]" : name;
    return prefix ? prefix + " · " + text : text;
  }

  // Tall enough to read on a phone, not taller than a desktop screen needs for two plots.
  function heightFor(width) {
    return Math.round(Math.max(200, Math.min(300, width * 0.6)));
  }

  // Groups every source's series by unit: [{unit, tables: [[time, values…]…], series: […]}].
  function byUnit(sources, answers) {
    var groups = [];
    answers.forEach(function (data, i) {
      data.groups.forEach(function (g) {
        var unit = g.unit || "";
        var group = groups.find(function (x) { return x.unit === unit; });
        if (!group) {
          group = { unit: unit, tables: [], series: [] };
          groups.push(group);
        }
        var table = [g.time];
        g.series.forEach(function (s) {
          table.push(s.values);
          group.series.push({ label: label(sources[i].label, s.name, g.unit), discrete: s.discrete });
        });
        group.tables.push(table);
      });
    });
    return groups;
  }

  function options(group, width, syncKey, onScale) {
    var series = [{ label: "time [s]", value: function (u, v) { return fmt(v); } }];
    group.series.forEach(function (s, i) {
      series.push({
        label: s.label,
        stroke: PALETTE[i % PALETTE.length],
        width: 1.5,
        spanGaps: false,
        paths: s.discrete ? uPlot.paths.stepped({ align: 1 }) : undefined,
        value: function (u, v) { return fmt(v); },
      });
    });
    function axis(labelText) {
      return {
        stroke: TEXT, font: FONT, labelFont: FONT, label: labelText,
        grid: { stroke: GRID, width: 1 }, ticks: { stroke: AXIS, width: 1 },
      };
    }
    var x = axis("time [s]");
    x.size = 30;
    x.labelSize = 18;
    var y = axis(group.unit ? "[" + group.unit + "]" : "");
    y.size = 60;
    y.values = function (u, splits) { return splits.map(tick); };
    return {
      width: width,
      height: heightFor(width),
      series: series,
      scales: { x: { time: false } },
      axes: [x, y],
      cursor: { sync: { key: syncKey }, drag: { x: true, y: false } },
      legend: { live: true },
      hooks: { setScale: [onScale] },
    };
  }

  // Shift+drag pans the time axis of every plot of the box.
  function enablePan(plot, setRange) {
    var start = null;
    plot.over.parentNode.addEventListener("mousedown", function (e) {
      if (!e.shiftKey) return;
      e.stopPropagation();
      e.preventDefault();
      start = { x: e.clientX, min: plot.scales.x.min, max: plot.scales.x.max };
    }, true);
    window.addEventListener("mousemove", function (e) {
      if (!start) return;
      var perPixel = (start.max - start.min) / plot.over.clientWidth;
      var shift = (start.x - e.clientX) * perPixel;
      setRange(start.min + shift, start.max + shift);
    });
    window.addEventListener("mouseup", function () { start = null; });
  }

  // The stacked canvases as one PNG (what the user sees, on the page's background).
  function png(plots) {
    var canvases = plots.map(function (p) { return p.ctx.canvas; });
    var out = document.createElement("canvas");
    out.width = Math.max.apply(null, canvases.map(function (c) { return c.width; }));
    out.height = canvases.reduce(function (h, c) { return h + c.height; }, 0);
    var ctx = out.getContext("2d");
    ctx.fillStyle = BACKGROUND;
    ctx.fillRect(0, 0, out.width, out.height);
    var y = 0;
    canvases.forEach(function (c) {
      ctx.drawImage(c, 0, y);
      y += c.height;
    });
    return out.toDataURL("image/png");
  }

  function draw(box, sources, answers) {
    var groups = byUnit(sources, answers);
    if (groups.length === 0) return;
    var live = document.createElement("div");
    live.className = "plot-live";
    box.insertBefore(live, box.firstChild);
    var width = live.clientWidth;
    var syncKey = "plot-" + (++syncKeys);
    var plots = [];
    var syncing = false;
    function setRange(min, max) {
      syncing = true;
      plots.forEach(function (p) { p.setScale("x", { min: min, max: max }); });
      syncing = false;
    }
    function onScale(u, key) {
      if (key !== "x" || syncing) return;
      setRange(u.scales.x.min, u.scales.x.max);
    }
    groups.forEach(function (group) {
      var panel = document.createElement("div");
      panel.className = "plot-panel";
      live.appendChild(panel);
      var data = group.tables.length === 1 ? group.tables[0] : uPlot.join(group.tables);
      var plot = new uPlot(options(group, width, syncKey, onScale), data, panel);
      plots.push(plot);
      enablePan(plot, setRange);
    });
    new ResizeObserver(function () {
      var w = live.clientWidth;
      if (w > 0) plots.forEach(function (p) { p.setSize({ width: w, height: heightFor(w) }); });
    }).observe(live);
    var svg = box.querySelector(".plot-svg");
    if (svg) svg.hidden = true;
    var button = box.querySelector(".plot-png");
    if (button) {
      button.hidden = false;
      button.addEventListener("click", function () {
        var a = document.createElement("a");
        a.href = png(plots);
        a.download = button.getAttribute("data-name") || "plot.png";
        a.click();
      });
    }
    box.plots = plots;
    box.setAttribute("data-plot-ready", String(plots.length));
  }

  function load(box) {
    if (box.hasAttribute("data-plot-started")) return;
    box.setAttribute("data-plot-started", "");
    var sources = JSON.parse(box.getAttribute("data-plot"));
    var pixels = Math.max(1, Math.round(box.clientWidth * (window.devicePixelRatio || 1)));
    Promise.all(sources.map(function (s) {
      var url = s.url + (s.url.indexOf("?") < 0 ? "?" : "&") + "width=" + Math.min(pixels, 4096);
      return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) {
          if (!r.ok) throw new Error(url + " answered " + r.status);
          return r.json();
        });
    })).then(function (answers) {
      draw(box, sources, answers);
    }).catch(function (e) {
      // The server's SVG stays: it is the whole plot without the interactive one.
      box.setAttribute("data-plot-error", String(e));
    });
  }

  function start(root) {
    if (typeof uPlot === "undefined") return;
    (root.querySelectorAll ? root : document).querySelectorAll("[data-plot]").forEach(load);
    if (root.matches && root.matches("[data-plot]")) load(root);
  }

  start(document);
  // The run page's details are swapped in by htmx when the run ends.
  document.addEventListener("htmx:load", function (e) { start(e.detail.elt); });
})();
