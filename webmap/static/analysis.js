/* geo_mz web map: the relief-audit overlay (/analysis/relief) and its headline figure, refreshed
   on live `analysis` events (dispatched by map.js as `geomz:analysis`); the 15-minute circle's
   overlays (/analysis/coverage/layers, loaded on first toggle) and its coverage share
   (/analysis/coverage). Text via textContent only.
   A request that fails, or a live `analysis_error` event (the background re-run failed), shows
   a red note on the map with the server's message; a figure or overlay from an earlier success
   stays only marked stale ("已过期 / stale"). */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map) return;
  var map = hook.map;
  var en = document.body.dataset.lang === "en";
  var T = en
    ? { layer: "Relief audit (3 h / 5 h delivery)", late: "Villages late or cut off", cut: "cut off", out: "fell out", route: "Detour",
        circle: "15-minute circle", gaps: "Coverage gaps", share: "Aged 60+ within 15 min",
        failed: "could not be computed", stale: "stale", kept: "Shown: the last result that was computed (stale)." }
    : { layer: "救灾物资送达核查", late: "村居超时/断路", cut: "断路", out: "新超时", route: "绕行路线",
        circle: "15分钟养老服务圈", gaps: "养老服务缺口", share: "15分钟覆盖率(60岁以上)",
        failed: "无法计算", stale: "已过期", kept: "仍显示上次计算成功的结果（已过期）。" };
  var group = L.layerGroup(), colors = {}, labels = {}, on = false, timer = null;
  var relief = null, share = null, stale = { relief: false, share: false };
  hook.state.analysis = stale; // for the browser tests
  function get(path) { return hook.call("GET", path); } // {ok, status, body}; never rejects
  // A failed request: red note; what was shown before stays, marked stale.
  function failed(key, title, r, had) {
    stale[key] = had;
    hook.note("analysis:" + key, title + " " + T.failed, hook.problem(r) + (had ? "\n" + T.kept : ""));
    render(); redrawLegend();
  }
  function loaded(key) { stale[key] = false; hook.clearNote("analysis:" + key); }
  var cov = { isochrones: L.layerGroup(), coverage_gaps: L.layerGroup() }, covLoad = null;
  // own panes (map.js): the relief audit above the roads, the 15-minute rings above the gaps
  var po = hook.paneOptions || function () { return {}; }, rings = {};
  if (hook.paneOptions) {
    map.createPane("geomz-rings").style.zIndex = 407;
    rings = { pane: "geomz-rings", renderer: L.svg({ pane: "geomz-rings" }) };
  }
  var paneOf = { relief: po("relief"), coverage_gaps: po("coverage"), isochrones: rings };
  var legends = { relief: { layer: group, legend: null }, isochrones: { layer: cov.isochrones, legend: null },
    coverage_gaps: { layer: cov.coverage_gaps, legend: null } };
  hook.extraLegends = [legends.relief, legends.isochrones, legends.coverage_gaps];
  function redrawLegend() { legends.relief.stale = stale.relief; if (hook.drawLegend) hook.drawLegend(); }

  function popup(p) {
    var d = document.createElement("div"), h = document.createElement("h3"), tx = document.createElement("div");
    h.textContent = p.name || p.point_id;
    tx.textContent = [(labels[p.status] || p.status), p.target,
      p.time_min == null ? "—" : Math.round(p.time_min) + " min", p.store_name || ""].join(" · ");
    d.appendChild(h); d.appendChild(tx); return d;
  }
  function draw(body) {
    (body.statuses || []).forEach(function (s) { colors[s.code] = s.color; labels[s.code] = en ? s.en : s.zh; });
    legends.relief.legend = { title: T.layer, geometry: "Point", swatches: (body.statuses || []).map(function (s) {
      return [s.color, en ? s.en : s.zh]; }).concat([["#2166ac", T.route, "LineString"]]) };
    group.clearLayers();
    L.geoJSON(body.features, L.extend({
      pointToLayer: function (f, ll) {
        var c = colors[f.properties.status] || "#888";
        return L.circleMarker(ll, L.extend({ radius: f.properties.changed ? 7 : 5, color: "#333", weight: f.properties.changed ? 2 : 0.5, fillColor: c, fillOpacity: 0.9 }, paneOf.relief));
      },
      style: function () { return { color: "#2166ac", weight: 3, dashArray: "6 4" }; },
      onEachFeature: function (f, lyr) {
        lyr.bindPopup(f.properties.feature_type === "route" ? function () { var d = document.createElement("div"); d.textContent = T.route + " · " + (f.properties.route_id || ""); return d; } : function () { return popup(f.properties); });
      }
    }, paneOf.relief)).addTo(group);
    redrawLegend();
  }
  function row(dl, label, text, cls) {
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = label; dd.textContent = text; if (cls) dd.className = cls;
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function render() {
    var dl = document.getElementById("analysis-figures"), s = relief;
    if (!dl) return;
    dl.textContent = "";
    var old = function (k) { return stale[k] ? " (" + T.stale + ")" : ""; };
    if (s) row(dl, T.late + old("relief"), s.villages_late_or_cut_off + " / " + s.villages + (s.cut_off || s.falls_out ? " (" + T.cut + " " + s.cut_off + ", " + T.out + " " + s.falls_out + ")" : ""),
      stale.relief ? "stale" : s.villages_late_or_cut_off ? "unmet" : "met");
    if (share) row(dl, T.share + old("share"), share.value + " " + share.unit + (share.target ? " (" + share.target + ")" : ""),
      stale.share ? "stale" : share.met === true ? "met" : share.met === false ? "unmet" : "");
  }
  function figure(s) { relief = s; loaded("relief"); render(); }
  function loadShare() {
    return get("analysis/coverage").then(function (r) {
      if (!r.ok) { failed("share", T.share, r, !!share); return; }
      loaded("share");
      share = r.body.share_60plus_15min; render();
    });
  }
  function covPopup(f, fields) {
    var d = document.createElement("div"), p = f.popup || {};
    fields.forEach(function (x) {
      if (p[x[0]] === undefined) return;
      var line = document.createElement("div"); line.textContent = x[1] + ": " + p[x[0]]; d.appendChild(line);
    });
    return d;
  }
  function loadCoverage() {
    if (covLoad) return covLoad;
    covLoad = get("analysis/coverage/layers?lang=" + (en ? "en" : "zh")).then(function (r) {
      // nothing was drawn: the rings stay empty, the note says why; the next toggle retries
      if (!r.ok) { covLoad = null; failed("coverage_layers", T.circle, r, false); return; }
      loaded("coverage_layers");
      var b = r.body;
      Object.keys(cov).forEach(function (id) {
        var fc = b.layers[id], fields = fc.fields || [];
        // titled as in the layer list, so the entry is found by the toggle's name
        legends[id].legend = fc.legend && L.extend({}, fc.legend, { title: id === "isochrones" ? T.circle : T.gaps });
        L.geoJSON(fc, L.extend({
          style: function (f) { return f.style || {}; },
          onEachFeature: function (f, lyr) { lyr.bindPopup(function () { return covPopup(f, fields); }); }
        }, paneOf[id])).addTo(cov[id]);
      });
      redrawLegend();
    });
    return covLoad;
  }
  function load() {
    return get("analysis/relief").then(function (r) {
      if (!r.ok) { failed("relief", T.layer, r, !!relief); return; } // the overlay keeps its last draw
      figure(r.body); if (on) draw(r.body);
    });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(load, 200); }

  if (hook.control) {
    hook.control.addOverlay(group, T.layer);
    hook.control.addOverlay(cov.isochrones, T.circle); // off by default
    hook.control.addOverlay(cov.coverage_gaps, T.gaps);
  }
  map.on("overlayadd", function (e) {
    if (e.layer === group) { on = true; load(); }
    if (e.layer === cov.isochrones || e.layer === cov.coverage_gaps) loadCoverage();
  });
  map.on("overlayremove", function (e) { if (e.layer === group) { on = false; group.clearLayers(); } });
  document.addEventListener("geomz:analysis", function (e) { figure(e.detail); soon(); });
  document.addEventListener("geomz:analysis-error", function (e) { failed("relief", T.layer, { status: e.detail.status, body: e.detail }, !!relief); });
  document.addEventListener("geomz:live", soon);
  load();
  loadShare();
})();
