/* geo_mz web map: layers, legend, side panel, login, incident reports, live updates (SSE).
   All text from the server is inserted with textContent (never as HTML).
   A request that fails (a layer, a tile, the figures, an analysis) shows a red note on the map
   with the server's message; a layer keeps its last good data only marked stale (legend). */
(function () {
  "use strict";
  var T = {
    zh: { figures: "态势概览", incidents: "灾情报告", report: "上报灾情", kind: "类型", description: "描述",
      people: "受影响人数", submit: "提交", click_map: "请在地图上点击灾情位置", login: "登录", logout: "退出",
      username: "用户名", password: "密码", live: "实时连接", saved: "已提交", where: "位置已选",
      closures: "道路中断", shelters_open: "启用避难场所", places_free: "避难场所空余床位", places_all: "（按全部场所，暂无启用）",
      occupancy: "当前安置人数", incidents_open: "未办结灾情", set: "更新", lift: "解除中断",
      stale: "已被他人修改，已重新载入，请再试", legend: "图例", shown: "显示",
      failed: "加载失败", outdated: "已过期", kept: "地图上仍是上次成功载入的数据（已过期，见图例）。",
      broken: "计算失败", close: "关闭", offline: "无法连接服务器", config: "地图配置", more: "点击查看全文" },
    en: { figures: "Situation", incidents: "Incident reports", report: "Report an incident", kind: "Kind",
      description: "Description", people: "People affected", submit: "Submit",
      click_map: "Click the map where it happened", login: "Log in", logout: "Log out", username: "User",
      password: "Password", live: "Live connection", saved: "Sent", where: "Location set",
      closures: "Road closures", shelters_open: "Shelters open", places_free: "Shelter places free", places_all: " (all shelters: none open)",
      occupancy: "Occupancy", incidents_open: "Open incidents", set: "Update", lift: "Lift closure",
      stale: "Changed by someone else; reloaded, try again", legend: "Legend", shown: "showing",
      failed: "failed to load", outdated: "stale", kept: "The map still shows the last data that loaded (stale, see the legend).",
      broken: "failed", close: "Close", offline: "cannot reach the server", config: "Map configuration", more: "Click for the whole message" }
  };
  var base = document.body.dataset.base || "/";
  var lang = document.body.dataset.lang === "en" ? "en" : "zh";
  var t = function (k) { return T[lang][k] || k; };
  var st = { config: null, session: {}, groups: {}, legends: {}, meta: {}, lastId: 0, at: null, marker: null };
  var ROLES = ["viewer", "reporter", "commander", "admin"];
  var can = function (role) { return ROLES.indexOf(st.session.role) >= ROLES.indexOf(role) && !!st.session.role; };
  var $ = function (id) { return document.getElementById(id); };
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }

  function call(method, path, body, etag) {
    var h = { Accept: "application/json" };
    if (body !== undefined) h["Content-Type"] = "application/json";
    if (method !== "GET" && st.session.csrf_token) h["X-CSRF-Token"] = st.session.csrf_token;
    if (etag) h["If-Match"] = etag;
    return fetch(base + path, { method: method, headers: h, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body) }).then(function (r) {
      return (r.status === 204 ? Promise.resolve("null") : r.text()).then(function (txt) {
        var b;
        try { b = JSON.parse(txt); } catch (e) { b = { code: "not_json", description: "HTTP " + r.status + " " + r.statusText }; }
        return { ok: r.ok, status: r.status, body: b, etag: r.headers.get("ETag") };
      });
    }, function (e) { // no answer at all (server down, network): a failed response too
      return { ok: false, status: 0, body: { code: "network", description: t("offline") + " (" + e.message + ")" }, etag: null };
    });
  }
  function problem(r) {
    var b = r.body || {}, lines = [b.description || ("HTTP " + r.status)];
    (b.errors || []).forEach(function (e) { lines.push(e.field + ": " + e.message); });
    return lines.join("\n");
  }

  document.querySelectorAll("[data-i18n]").forEach(function (e) { e.textContent = t(e.dataset.i18n); });
  document.querySelectorAll("[data-i18n-placeholder]").forEach(function (e) { e.placeholder = t(e.dataset.i18nPlaceholder); });
  $("live").title = t("live");

  var map = L.map("map", { preferCanvas: true, zoomSnap: 0.5 });
  window.geoMzMap = { map: map, state: st }; // read-only hook for the browser tests
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  var control = L.control.layers(null, null, { collapsed: false }).addTo(map);
  window.geoMzMap.control = control; // analysis.js adds its overlay here
  // Red notes on the map: one per failing thing (key), replaced when it fails again, removed
  // when it loads again. Also used by analysis.js (window.geoMzMap.note / clearNote).
  var notes = L.DomUtil.create("div", "map-notes", map.getContainer());
  notes.setAttribute("role", "alert");
  L.DomEvent.disableClickPropagation(notes); L.DomEvent.disableScrollPropagation(notes);
  st.notes = {};
  function note(key, title, detail) {
    var box = st.notes[key];
    if (!box) {
      box = el("div", null, "map-note"); box.dataset.key = key; box.title = t("more");
      box.onclick = function () { box.classList.toggle("open"); }; // the whole message
      notes.appendChild(box); st.notes[key] = box;
    }
    box.textContent = "";
    var x = el("button", "×", "close"); x.type = "button"; x.title = t("close");
    x.onclick = function (ev) { ev.stopPropagation(); clearNote(key); };
    box.appendChild(x); box.appendChild(el("b", title));
    if (detail) box.appendChild(el("div", detail));
  }
  function clearNote(key) { var box = st.notes[key]; if (box) { notes.removeChild(box); delete st.notes[key]; } }
  window.geoMzMap.note = note; window.geoMzMap.clearNote = clearNote;
  window.geoMzMap.call = call; window.geoMzMap.problem = problem;
  var legend = L.control({ position: "bottomright" });
  legend.onAdd = function () { var d = L.DomUtil.create("div", "legend"); L.DomEvent.disableScrollPropagation(d); return d; };
  legend.addTo(map);

  function popup(id, layerId, f) {
    var meta = st.meta[layerId], box = el("div", null, "popup"), table = el("table");
    box.appendChild(el("h3", meta.title));
    meta.fields.forEach(function (pair) {
      var v = f.properties.p[pair[0]];
      if (v === undefined) return;
      var tr = el("tr"); tr.appendChild(el("th", pair[1])); tr.appendChild(el("td", v)); table.appendChild(tr);
    });
    box.appendChild(table);
    if (layerId === "shelters" && can("commander")) box.appendChild(occupancyForm(id));
    if (layerId === "road_closures" && can("commander")) {
      var lift = el("button", t("lift")); lift.type = "button";
      lift.onclick = function () { edit("DELETE", "road_closures", id); };
      box.appendChild(lift);
    }
    return box;
  }
  function occupancyForm(id) {
    var form = el("form"), input = el("input"), btn = el("button", t("set"));
    input.type = "number"; input.min = "0"; input.step = "1"; input.placeholder = t("occupancy");
    form.appendChild(input); form.appendChild(btn);
    form.onsubmit = function (ev) {
      ev.preventDefault();
      edit("PATCH", "shelters", id, { occupancy_persons: input.value === "" ? null : Number(input.value) });
    };
    return form;
  }
  function edit(method, layerId, id, body) {
    var path = "collections/" + layerId + "/items/" + encodeURIComponent(id);
    call("GET", path).then(function (cur) {
      if (!cur.ok) throw new Error(problem(cur));
      return call(method, path, body, cur.etag);
    }).then(function (r) {
      if (r.status === 409) alert(t("stale")); else if (!r.ok) alert(problem(r));
      map.closePopup(); refresh([layerId]);
    }).catch(function (e) { alert(e.message); });
  }

  function addGroup(info) {
    var g = L.geoJSON(null, {
      pointToLayer: function (f, ll) { return L.circleMarker(ll, f.properties.s); },
      style: function (f) { return f.properties.s; },
      onEachFeature: function (f, lyr) { lyr.bindPopup(function () { return popup(f.id, info.id, f); }); }
    });
    st.groups[info.id] = g;
    st.meta[info.id] = { info: info, title: info.title[lang], fields: [] };
    if (info.tiled && window.GeoMzTiles) st.meta[info.id].tiles = tileLoader(info.id, g); // tiles.js
    var count = info.error ? " (⚠ " + t("broken") + ")" : info.writes.length ? "" : " (" + info.count + ")";
    control.addOverlay(g, info.title[lang] + count);
    if (info.error) layerFailed(info.id, { status: 500, body: info.error }); // listed, not computed
    if (info.visible) g.addTo(map);
  }
  // A layer request failed: red note; data drawn before stays only marked stale in the legend.
  function layerFailed(id, r) {
    var stale = st.groups[id].getLayers().length > 0;
    st.meta[id].failed = true;
    if (st.legends[id]) { st.legends[id].stale = stale; drawLegend(); }
    note("layer:" + id, st.meta[id].title + " " + t("failed"), problem(r) + (stale ? "\n" + t("kept") : ""));
  }
  function layerLoaded(id) {
    st.meta[id].failed = false;
    if (st.legends[id]) st.legends[id].stale = false;
    clearNote("layer:" + id);
  }
  function tileLoader(id, g) {
    return new window.GeoMzTiles.TileLoader({ map: map, group: g,
      url: function (z, x, y) { return "map/tiles/" + id + "/" + z + "/" + x + "/" + y + ".json?lang=" + lang; },
      fetchJson: function (path) { return call("GET", path); },
      onBody: function (body) {
        st.meta[id].fields = body.fields;
        if (st.meta[id].failed) { layerLoaded(id); drawLegend(); }
        if (!st.legends[id]) { st.legends[id] = { legend: body.legend, note: "" }; drawLegend(); }
      },
      onError: function (r) { layerFailed(id, r); } });
  }
  function loadLayer(id) {
    if (!st.meta[id] || !map.hasLayer(st.groups[id])) return Promise.resolve();
    if (st.meta[id].tiles) return st.meta[id].tiles.update();
    var info = st.meta[id].info, q = "map/layers/" + id + "?lang=" + lang;
    if (info.big) q += "&bbox=" + map.getBounds().pad(0.2).toBBoxString().split(",").map(function (x) {
      return Math.max(-180, Math.min(180, Number(x))).toFixed(6); }).join(",");
    return call("GET", q).then(function (r) {
      if (!r.ok) { layerFailed(id, r); return; }
      st.meta[id].fields = r.body.fields;
      st.legends[id] = { legend: r.body.legend, note: r.body.shown < r.body.total ? t("shown") + " " + r.body.shown + "/" + r.body.total : "" };
      st.groups[id].clearLayers().addData(r.body);
      layerLoaded(id);
      drawLegend();
    });
  }
  function drawLegend() {
    var box = legend.getContainer(); box.textContent = "";
    box.appendChild(el("strong", t("legend")));
    st.config.layers.slice().reverse().forEach(function (info) {
      var entry = st.legends[info.id];
      if (!entry || !entry.legend.swatches.length || !map.hasLayer(st.groups[info.id])) return;
      box.appendChild(el("b", entry.legend.title + (entry.note ? " (" + entry.note + ")" : "") +
        (entry.stale ? " — " + t("outdated") : ""), entry.stale ? "stale" : null));
      entry.legend.swatches.forEach(function (s) {
        var row = el("div"), sw = el("i", null, entry.legend.geometry);
        sw.style.background = s[0]; row.appendChild(sw); row.appendChild(document.createTextNode(s[1]));
        box.appendChild(row);
      });
    });
  }
  map.on("overlayadd", function (e) { for (var id in st.groups) if (st.groups[id] === e.layer) loadLayer(id); });
  map.on("overlayremove", drawLegend);
  map.on("moveend", function () { st.config.layers.forEach(function (i) { if (i.big || i.tiled) loadLayer(i.id); }); });

  function loadSummary() {
    return call("GET", "map/summary?lang=" + lang).then(function (r) {
      if (!r.ok) { note("summary", t("figures") + " " + t("failed"), problem(r)); return; }
      clearNote("summary");
      var live = r.body.live, dl = $("live-figures"), kl = $("kpi-list"), ol = $("incident-list");
      dl.textContent = ""; kl.textContent = ""; ol.textContent = "";
      [["incidents_open", live.incidents_open], ["closures", live.closures], ["shelters_open", live.shelters_open],
       ["occupancy", live.shelter_occupancy], ["places_free", live.shelter_places_free]].forEach(function (p) {
        if (p[1] === undefined) return;
        var note = p[0] === "places_free" && live.shelter_places_basis === "all" ? t("places_all") : "";
        dl.appendChild(el("dt", t(p[0]))); dl.appendChild(el("dd", String(p[1]) + note));
      });
      r.body.kpis.forEach(function (k) {
        kl.appendChild(el("dt", k.label));
        kl.appendChild(el("dd", k.value + " " + k.unit + (k.target ? " (" + k.target + ")" : ""), k.met === true ? "met" : k.met === false ? "unmet" : ""));
      });
      r.body.incidents.forEach(function (i) {
        var li = el("li"), dot = el("span", null, "dot"); dot.style.background = i.color;
        li.appendChild(dot); li.appendChild(document.createTextNode(i.kind_label + " · " + i.status_label));
        li.appendChild(el("small", (i.description || "") + " — " + (i.reporter || "") + " " + (i.reported_at || "")));
        li.onclick = function () { if (i.lat != null) map.setView([i.lat, i.lon], Math.max(map.getZoom(), 15)); };
        ol.appendChild(li);
      });
    });
  }

  var pending = {}, timer = null;
  function refresh(layerIds) {
    layerIds.forEach(function (id) { pending[id] = true; });
    clearTimeout(timer);
    timer = setTimeout(function () {
      var ids = Object.keys(pending); pending = {};
      ids.forEach(function (id) { if (st.groups[id]) loadLayer(id); });
      loadSummary();
    }, 150);
  }
  function connect() {
    var es = new EventSource(base + "events?since=" + st.lastId);
    es.onopen = function () { $("live").className = "on"; document.dispatchEvent(new CustomEvent("geomz:live")); };
    es.onerror = function () { $("live").className = "off"; };
    es.addEventListener("change", function (e) {
      var d = JSON.parse(e.data), m = st.meta[d.layer];
      st.lastId = Number(e.lastEventId);
      if (m && m.tiles && map.hasLayer(st.groups[d.layer])) m.tiles.invalidate(d.bboxes); // refetch touched tiles
      refresh([d.layer]);
    });
    es.addEventListener("reset", function () {
      Object.keys(st.meta).forEach(function (id) { if (st.meta[id].tiles) st.meta[id].tiles.clear(); });
      refresh(Object.keys(st.groups));
    });
    es.addEventListener("analysis", function (e) { document.dispatchEvent(new CustomEvent("geomz:analysis", { detail: JSON.parse(e.data) })); });
    // the background re-run of the relief audit failed: analysis.js shows it (red note, stale)
    es.addEventListener("analysis_error", function (e) { document.dispatchEvent(new CustomEvent("geomz:analysis-error", { detail: JSON.parse(e.data) })); });
  }

  function showSession(s) {
    st.session = s || {};
    $("login-form").hidden = !!st.session.user; $("who").hidden = !st.session.user;
    var rl = ((st.config || {}).roles || {})[st.session.role];
    $("who-name").textContent = st.session.user ? st.session.user + " (" + (rl ? rl[lang] : st.session.role) + ")" : "";
    $("report").hidden = !can("reporter");
  }
  $("login-form").onsubmit = function (ev) {
    ev.preventDefault();
    var f = ev.target;
    call("POST", "login", { username: f.username.value, password: f.password.value }).then(function (r) {
      $("auth-msg").textContent = r.ok ? "" : problem(r);
      if (r.ok && !(st.config && st.config.layers)) { location.reload(); return; }
      if (r.ok) { f.password.value = ""; showSession(r.body); refresh(Object.keys(st.groups)); }
    });
  };
  $("logout").onclick = function () { call("POST", "logout", {}).then(function () { showSession({}); }); };
  // "preclick": a click on a feature opens its popup and stops "click", and the area's
  // polygons cover the whole jurisdiction, so "click" alone never picked a place.
  map.on("preclick", function (e) {
    if (!can("reporter")) return;
    st.at = e.latlng;
    if (st.marker) st.marker.setLatLng(e.latlng); else st.marker = L.marker(e.latlng).addTo(map);
    $("report-where").textContent = t("where") + ": " + e.latlng.lng.toFixed(5) + ", " + e.latlng.lat.toFixed(5);
  });
  $("report-form").onsubmit = function (ev) {
    ev.preventDefault();
    var f = ev.target, msg = $("report-msg");
    if (!st.at) { msg.className = "msg"; msg.textContent = t("click_map"); return; }
    var props = { kind: f.kind.value };
    if (f.description.value) props.description = f.description.value;
    if (f.people_affected.value !== "") props.people_affected = Number(f.people_affected.value);
    call("POST", "collections/incidents/items", { type: "Feature", properties: props,
      geometry: { type: "Point", coordinates: [st.at.lng, st.at.lat] } }).then(function (r) {
      msg.className = r.ok ? "msg ok" : "msg"; msg.textContent = r.ok ? t("saved") : problem(r);
      if (r.ok) { f.reset(); st.at = null; map.removeLayer(st.marker); st.marker = null; $("report-where").textContent = t("click_map"); }
    });
  };

  call("GET", "map/config?lang=" + lang).then(function (r) {
    if (!r.ok && (r.status >= 500 || r.status === 0)) note("config", t("config") + " " + t("failed"), problem(r));
    if (!r.ok) { $("auth-msg").textContent = problem(r); return call("GET", "session").then(function (s) { st.config = { roles: {} }; showSession(s.body); }); }
    st.config = r.body; st.lastId = r.body.last_event_id;
    $("title").textContent = r.body.name + (lang === "zh" ? " 灾害应急指挥地图" : " disaster command map");
    var b = r.body.view; map.fitBounds([[b[1], b[0]], [b[3], b[2]]]);
    if (r.body.tiles) L.tileLayer(r.body.tiles.url, { attribution: r.body.tiles.attribution, maxZoom: 18 }).addTo(map);
    var sel = $("report-form").kind;
    (r.body.incident_choices.kind || []).forEach(function (v) { var o = el("option", v[lang]); o.value = v.code; sel.appendChild(o); });
    r.body.layers.forEach(addGroup);
    r.body.layers.forEach(function (i) { loadLayer(i.id); });
    loadSummary(); connect();
    return call("GET", "session").then(function (s) { showSession(s.body); });
  });
})();
