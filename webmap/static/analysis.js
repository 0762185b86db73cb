/* geo_mz web map: the relief-audit overlay (/analysis/relief) and its headline figure, refreshed
   on live `analysis` events (dispatched by map.js as `geomz:analysis`); the 15-minute circle's
   overlays (/analysis/coverage/layers, loaded on first toggle) and its coverage share
   (/analysis/coverage). Text via textContent only. */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map) return;
  var map = hook.map, base = document.body.dataset.base || "/";
  var en = document.body.dataset.lang === "en";
  var T = en
    ? { layer: "Relief audit (3 h / 5 h delivery)", late: "Villages late or cut off", cut: "cut off", out: "fell out", route: "Detour",
        circle: "15-minute circle", gaps: "Coverage gaps", share: "Aged 60+ within 15 min" }
    : { layer: "救灾物资送达核查", late: "村居超时/断路", cut: "断路", out: "新超时", route: "绕行路线",
        circle: "15分钟养老服务圈", gaps: "养老服务缺口", share: "15分钟覆盖率(60岁以上)" };
  var group = L.layerGroup(), colors = {}, labels = {}, on = false, timer = null;
  var relief = null, share = null;
  var cov = { isochrones: L.layerGroup(), coverage_gaps: L.layerGroup() }, covLoad = null;

  function popup(p) {
    var d = document.createElement("div"), h = document.createElement("h3"), tx = document.createElement("div");
    h.textContent = p.name || p.point_id;
    tx.textContent = [(labels[p.status] || p.status), p.target,
      p.time_min == null ? "—" : Math.round(p.time_min) + " min", p.store_name || ""].join(" · ");
    d.appendChild(h); d.appendChild(tx); return d;
  }
  function draw(body) {
    (body.statuses || []).forEach(function (s) { colors[s.code] = s.color; labels[s.code] = en ? s.en : s.zh; });
    group.clearLayers();
    L.geoJSON(body.features, {
      pointToLayer: function (f, ll) {
        var c = colors[f.properties.status] || "#888";
        return L.circleMarker(ll, { radius: f.properties.changed ? 7 : 5, color: "#333", weight: f.properties.changed ? 2 : 0.5, fillColor: c, fillOpacity: 0.9 });
      },
      style: function () { return { color: "#2166ac", weight: 3, dashArray: "6 4" }; },
      onEachFeature: function (f, lyr) {
        lyr.bindPopup(f.properties.feature_type === "route" ? function () { var d = document.createElement("div"); d.textContent = T.route + " · " + (f.properties.route_id || ""); return d; } : function () { return popup(f.properties); });
      }
    }).addTo(group);
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
    if (s) row(dl, T.late, s.villages_late_or_cut_off + " / " + s.villages + (s.cut_off || s.falls_out ? " (" + T.cut + " " + s.cut_off + ", " + T.out + " " + s.falls_out + ")" : ""),
      s.villages_late_or_cut_off ? "unmet" : "met");
    if (share) row(dl, T.share, share.value + " " + share.unit + (share.target ? " (" + share.target + ")" : ""),
      share.met === true ? "met" : share.met === false ? "unmet" : "");
  }
  function figure(s) { relief = s; render(); }
  function loadShare() {
    return fetch(base + "analysis/coverage", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (b) { if (b && b.share_60plus_15min) { share = b.share_60plus_15min; render(); } }).catch(function () {});
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
    covLoad = fetch(base + "analysis/coverage/layers?lang=" + (en ? "en" : "zh"), { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (b) {
      if (!b) { covLoad = null; return; }
      Object.keys(cov).forEach(function (id) {
        var fc = b.layers[id], fields = fc.fields || [];
        L.geoJSON(fc, {
          style: function (f) { return f.style || {}; },
          onEachFeature: function (f, lyr) { lyr.bindPopup(function () { return covPopup(f, fields); }); }
        }).addTo(cov[id]);
      });
    }).catch(function () { covLoad = null; });
    return covLoad;
  }
  function load() {
    return fetch(base + "analysis/relief", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (b) { if (!b) return; figure(b); if (on) draw(b); }).catch(function () {});
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
  document.addEventListener("geomz:live", soon);
  load();
  loadShare();
})();
