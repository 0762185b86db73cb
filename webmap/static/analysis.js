/* geo_mz web map: the relief-audit overlay (/analysis/relief) and its headline figure, refreshed
   on live `analysis` events (dispatched by map.js as `geomz:analysis`). Text via textContent only. */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map) return;
  var map = hook.map, base = document.body.dataset.base || "/";
  var en = document.body.dataset.lang === "en";
  var T = en
    ? { layer: "Relief audit (3 h / 5 h delivery)", late: "Villages late or cut off", cut: "cut off", out: "fell out", route: "Detour" }
    : { layer: "救灾物资送达核查", late: "村居超时/断路", cut: "断路", out: "新超时", route: "绕行路线" };
  var group = L.layerGroup(), colors = {}, labels = {}, on = false, timer = null;

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
  function figure(s) {
    var dl = document.getElementById("analysis-figures");
    if (!dl) return;
    dl.textContent = "";
    var dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = T.late;
    dd.textContent = s.villages_late_or_cut_off + " / " + s.villages + (s.cut_off || s.falls_out ? " (" + T.cut + " " + s.cut_off + ", " + T.out + " " + s.falls_out + ")" : "");
    dd.className = s.villages_late_or_cut_off ? "unmet" : "met";
    dl.appendChild(dt); dl.appendChild(dd);
  }
  function load() {
    return fetch(base + "analysis/relief", { credentials: "same-origin" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (b) { if (!b) return; figure(b); if (on) draw(b); }).catch(function () {});
  }
  function soon() { clearTimeout(timer); timer = setTimeout(load, 200); }

  if (hook.control) hook.control.addOverlay(group, T.layer);
  map.on("overlayadd", function (e) { if (e.layer === group) { on = true; load(); } });
  map.on("overlayremove", function (e) { if (e.layer === group) { on = false; group.clearLayers(); } });
  document.addEventListener("geomz:analysis", function (e) { figure(e.detail); soon(); });
  document.addEventListener("geomz:live", soon);
  load();
})();
