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
      broken: "计算失败", close: "关闭", offline: "无法连接服务器", config: "地图配置", more: "点击查看全文",
      live_title: "现场态势", planning: "规划指标", situation: "态势", layers: "图层", bjt: "北京时间", none: "暂无要素",
      mode_off: "在地图上选点", mode_on: "选点中：点击地图（再按结束）", mylocation: "使用我的位置",
      no_incidents: "本工作空间没有灾情报告图层(incidents)，不能上报灾情；请管理员在工作空间中加入该图层后重启地图服务。" },
    en: { figures: "Situation", incidents: "Incident reports", report: "Report an incident", kind: "Kind",
      description: "Description", people: "People affected", submit: "Submit",
      click_map: "Click the map where it happened", login: "Log in", logout: "Log out", username: "User",
      password: "Password", live: "Live connection", saved: "Sent", where: "Location set",
      closures: "Road closures", shelters_open: "Shelters open", places_free: "Shelter places free", places_all: " (all shelters: none open)",
      occupancy: "Occupancy", incidents_open: "Open incidents", set: "Update", lift: "Lift closure",
      stale: "Changed by someone else; reloaded, try again", legend: "Legend", shown: "showing",
      failed: "failed to load", outdated: "stale", kept: "The map still shows the last data that loaded (stale, see the legend).",
      broken: "failed", close: "Close", offline: "cannot reach the server", config: "Map configuration", more: "Click for the whole message",
      live_title: "Live situation", planning: "Planning figures", situation: "Panel", layers: "Layers", bjt: "Beijing time", none: "no features",
      mode_off: "Pick the place on the map", mode_on: "Picking: click the map (press again to stop)", mylocation: "Use my location",
      no_incidents: "This workspace has no incident reports layer (incidents), so reports cannot be taken; an administrator must add it to the workspace and restart the map server." }
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
  // Server messages are "中文 / English": the half in the page's language (both when not split).
  function halves(text) {
    var s = String(text == null ? "" : text), m = /[\u3000-\u303f\u3400-\u9fff\uff00-\uffef”]\s+\/\s+(?=[^\s\u3400-\u9fff])/.exec(s);
    if (!m) return [s, ""];
    var zh = s.slice(0, m.index + 1), en = s.slice(m.index + m[0].length);
    return lang === "en" ? [en, zh] : [zh, en];
  }
  function say(text) { return String(text).split("\n").map(function (l) { return halves(l)[0]; }).join("\n"); }
  // ISO times (stored in UTC; naive ones too) shown as Beijing time, UTC+8: "2026-12-06 14:05 北京时间"
  function bjTime(v) {
    var s = String(v == null ? "" : v);
    if (!/^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(s)) return s;
    var d = new Date(/(Z|[+-]\d{2}:?\d{2})$/.test(s) ? s.replace(" ", "T") : s.replace(" ", "T") + "Z");
    if (isNaN(d.getTime())) return s;
    var b = new Date(d.getTime() + 8 * 3600 * 1000), p = function (n) { return (n < 10 ? "0" : "") + n; };
    return b.getUTCFullYear() + "-" + p(b.getUTCMonth() + 1) + "-" + p(b.getUTCDate()) + " " +
      p(b.getUTCHours()) + ":" + p(b.getUTCMinutes()) + " " + t("bjt");
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
  // Panes by priority, whatever order the layers load in: base polygons (the overlay pane's
  // canvas) < 15-minute circle < boundary findings < population dots < lines < closures <
  // relief audit < points < labels < incidents. Only base polygons and dots are canvases
  // (a canvas takes every click on its area); the others are SVG, whose empty parts let
  // clicks through to the panes below (map.css), so the topmost interactive feature wins.
  var PANES = { coverage: 405, findings: 410, dots: 415, lines: 420, closures: 425, relief: 430,
    points: 440, labels: 450, incidents: 460 };
  st.renderers = {};
  Object.keys(PANES).forEach(function (name) {
    var p = map.createPane("geomz-" + name); p.style.zIndex = PANES[name];
    p.classList.add("geomz-pane-" + name);
    st.renderers[name] = name === "dots" ? L.canvas({ pane: "geomz-" + name }) : L.svg({ pane: "geomz-" + name });
  });
  function paneOptions(name) { // {pane, renderer} for a layer of this pane ("polygons": the overlay pane)
    return PANES[name] ? { pane: "geomz-" + name, renderer: st.renderers[name] } : {};
  }
  window.geoMzMap.paneOptions = paneOptions; window.geoMzMap.say = say; window.geoMzMap.bjTime = bjTime;
  window.geoMzMap.halves = halves;
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
    if (detail) {
      var lines = String(detail).split("\n").map(halves);
      box.appendChild(el("div", lines.map(function (h) { return h[0]; }).join("\n")));
      var other = lines.map(function (h) { return h[1]; }).filter(Boolean).join("\n");
      if (other) box.appendChild(el("div", other, "other-lang")); // shown when the note is opened
    }
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
      var tr = el("tr"); tr.appendChild(el("th", pair[1])); tr.appendChild(el("td", bjTime(v))); table.appendChild(tr);
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
      if (r.status === 409) alert(t("stale")); else if (!r.ok) alert(say(problem(r)));
      map.closePopup(); refresh([layerId]);
    }).catch(function (e) { alert(say(e.message)); });
  }

  // Incidents: a pin with a glyph per kind (not a circle like the facilities)
  var GLYPH = { zh: { flood: "水", landslide: "崩", road_blocked: "断", building_damage: "房", people_trapped: "困", fire: "火", other: "!" },
    en: { flood: "W", landslide: "L", road_blocked: "R", building_damage: "B", people_trapped: "P", fire: "F", other: "!" } };
  function kindOf(label) { // the popup text is the kind's label; its code and colour from the config
    var ks = ((st.config || {}).incident_choices || {}).kind || [];
    for (var i = 0; i < ks.length; i++) if (ks[i].code === label || ks[i].zh === label || ks[i].en === label) return ks[i];
    return { code: "other", color: "#636363", zh: label, en: label };
  }
  function incidentIcon(k) {
    var d = el("div", null, "inc-pin inc-" + k.code), g = el("span", GLYPH[lang][k.code] || "!");
    d.style.background = k.color; d.appendChild(g);
    return L.divIcon({ className: "inc-icon", html: d, iconSize: [24, 30], iconAnchor: [12, 30], popupAnchor: [0, -28] });
  }
  window.geoMzMap.incidentIcon = function (code) { return incidentIcon(kindOf(code)); };
  function addGroup(info) {
    var pane = info.pane || "polygons", live = info.interactive !== false;
    var g = L.geoJSON(null, L.extend({
      pointToLayer: function (f, ll) {
        if (pane === "incidents") {
          var m = L.marker(ll, { icon: incidentIcon(kindOf(f.properties.p.kind)), pane: "geomz-incidents", title: f.properties.p.kind });
          return m.on("add", function () { m.getElement().dataset.id = f.id; }); // found by id (tests, other scripts)
        }
        return L.circleMarker(ll, L.extend({}, f.properties.s, paneOptions(pane), { interactive: live }));
      },
      style: function (f) { return L.extend({}, f.properties.s, { interactive: live && !(st.reportMode && pane === "polygons") }); },
      onEachFeature: function (f, lyr) { if (live) lyr.bindPopup(function () { return popup(f.id, info.id, f); }); }
    }, paneOptions(pane)));
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
        st.meta[id].fields = body.fields; restack(id);
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
      // A reload (a live edit anywhere, a move) replaces the markers: a popup open on one of
      // them would close under the reader, so the same feature's popup opens again, fresh.
      var open = null;
      st.groups[id].eachLayer(function (l) { if (l.feature && l.isPopupOpen && l.isPopupOpen()) open = l.feature.id; });
      st.groups[id].clearLayers().addData(r.body);
      if (open !== null) st.groups[id].eachLayer(function (l) {
        if (l.feature && l.feature.id === open && l.getPopup && l.getPopup()) l.openPopup();
      });
      restack(id);
      layerLoaded(id);
      drawLegend();
    });
  }
  // Layers sharing a pane: the later-drawn ones (higher z) back on top after a reload.
  function restack(id) {
    var me = st.meta[id].info;
    st.config.layers.forEach(function (i) {
      if (i.pane === me.pane && i.z > me.z && st.groups[i.id] && map.hasLayer(st.groups[i.id])) st.groups[i.id].bringToFront();
    });
    if ((me.pane || "polygons") === "polygons") st.config.layers.forEach(function (i) { // base polygons below
      if (i.pane === "polygons" && !i.interactive && i.z < me.z && st.groups[i.id]) st.groups[i.id].bringToBack();
    });
  }
  function swatch(row, geometry, color) { var sw = el("i", null, geometry); sw.style.background = color; row.appendChild(sw); }
  function drawLegend() {
    var box = legend.getContainer(); box.textContent = "";
    box.appendChild(el("strong", t("legend"), "legend-title"));
    var body = el("div", null, "legend-body"); box.appendChild(body);
    // overlays of analysis.js (relief audit, 15-minute circle) first: they are drawn on top
    (window.geoMzMap.extraLegends || []).forEach(function (x) {
      if (!map.hasLayer(x.layer) || !x.legend) return;
      body.appendChild(el("b", x.legend.title + (x.stale ? " — " + t("outdated") : ""), x.stale ? "stale" : null));
      x.legend.swatches.forEach(function (s) {
        var row = el("div"); swatch(row, s[2] || x.legend.geometry, s[0]); row.appendChild(document.createTextNode(s[1])); body.appendChild(row);
      });
    });
    st.config.layers.slice().reverse().forEach(function (info) {
      var entry = st.legends[info.id];
      if (!st.groups[info.id] || !map.hasLayer(st.groups[info.id])) return;
      var title = entry ? entry.legend.title : st.meta[info.id].title;
      body.appendChild(el("b", title + (entry && entry.note ? " (" + entry.note + ")" : "") +
        (entry && entry.stale ? " — " + t("outdated") : ""), entry && entry.stale ? "stale" : null));
      if (info.id === "incidents") { // every kind, with its pin
        (st.config.incident_choices.kind || []).forEach(function (k) {
          var row = el("div", null, "inc-row"), ic = incidentIcon(k).options.html.cloneNode(true);
          row.appendChild(ic); row.appendChild(document.createTextNode(k[lang])); body.appendChild(row);
        });
        return;
      }
      if (!entry || !entry.legend.swatches.length) { body.appendChild(el("div", t("none"), "hint")); return; }
      entry.legend.swatches.forEach(function (s) {
        var row = el("div"); swatch(row, entry.legend.geometry, s[0]); row.appendChild(document.createTextNode(s[1]));
        body.appendChild(row);
      });
    });
    document.dispatchEvent(new CustomEvent("geomz:legend"));
  }
  map.on("overlayadd", function (e) { for (var id in st.groups) if (st.groups[id] === e.layer) loadLayer(id); });
  map.on("overlayremove", drawLegend);
  map.on("overlayadd", function () { drawLegend(); });
  window.geoMzMap.drawLegend = function () { if (st.config && st.config.layers) drawLegend(); };
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
        var li = el("li"), pin = incidentIcon(kindOf(i.kind)).options.html; // the map's pin
        li.appendChild(pin); li.appendChild(document.createTextNode(i.kind_label + " · " + i.status_label));
        li.appendChild(el("small", (i.description || "") + " — " + (i.reporter || "") + " " + bjTime(i.reported_at || "")));
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
      document.dispatchEvent(new CustomEvent("geomz:change", { detail: d })); // incidents.js
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
    // a field reporter's page picks places by default; a commander's clicks open popups
    if (st.session.role !== st.modeRole) { st.modeRole = st.session.role; reportMode(st.session.role === "reporter"); }
    // a workspace served without an incidents layer (read-only file, PostGIS import of a
    // workspace without one): no report form whose every report would fail, and a note why
    if (can("reporter") && st.config && st.config.layers && !st.groups.incidents) {
      $("report").hidden = true;
      note("no-incidents", t("incidents"), t("no_incidents"));
    }
  }
  // "Report" mode: clicks place the report pin (and open no popup: map.css lets clicks
  // through every feature); outside it a click only opens the topmost feature's popup.
  function reportMode(on) {
    st.reportMode = !!on && can("reporter");
    document.body.classList.toggle("report-mode", st.reportMode);
    var b = $("report-mode"); b.setAttribute("aria-pressed", String(st.reportMode));
    b.textContent = t(st.reportMode ? "mode_on" : "mode_off");
    // SVG features let clicks through by CSS (map.css); the polygons' canvas asks each
    // feature's options.interactive on every click, so they are switched here
    ((st.config || {}).layers || []).forEach(function (i) {
      if (i.pane !== "polygons" || !i.interactive || !st.groups[i.id]) return;
      st.groups[i.id].eachLayer(function (l) { l.options.interactive = !st.reportMode; });
    });
  }
  $("report-mode").onclick = function () { reportMode(!st.reportMode); };
  reportMode(false);
  function setReportAt(latlng) {
    st.at = latlng;
    if (st.marker) st.marker.setLatLng(latlng); else st.marker = L.marker(latlng, { interactive: false, keyboard: false }).addTo(map);
    $("report-where").textContent = t("where") + ": " + latlng.lng.toFixed(5) + ", " + latlng.lat.toFixed(5);
  }
  window.geoMzMap.setReportAt = function (latlng) { if (can("reporter")) setReportAt(latlng); };
  $("login-form").onsubmit = function (ev) {
    ev.preventDefault();
    var f = ev.target;
    call("POST", "login", { username: f.username.value, password: f.password.value }).then(function (r) {
      $("auth-msg").textContent = r.ok ? "" : say(problem(r));
      if (r.ok && !(st.config && st.config.layers)) { location.reload(); return; }
      if (r.ok) { f.password.value = ""; showSession(r.body); refresh(Object.keys(st.groups)); }
    });
  };
  $("logout").onclick = function () { call("POST", "logout", {}).then(function () { showSession({}); }); };
  // "preclick": a click on a feature opens its popup and stops "click", and the area's
  // polygons cover the whole jurisdiction, so "click" alone never picked a place.
  map.on("preclick", function (e) {
    if (!can("reporter") || !st.reportMode) return;
    setReportAt(e.latlng);
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
      msg.className = r.ok ? "msg ok" : "msg"; msg.textContent = r.ok ? t("saved") : say(problem(r));
      if (r.ok) { f.reset(); st.at = null; map.removeLayer(st.marker); st.marker = null; $("report-where").textContent = t("click_map"); }
    });
  };

  call("GET", "map/config?lang=" + lang).then(function (r) {
    if (!r.ok && (r.status >= 500 || r.status === 0)) note("config", t("config") + " " + t("failed"), problem(r));
    if (!r.ok) { $("auth-msg").textContent = say(problem(r)); return call("GET", "session").then(function (s) { st.config = { roles: {} }; showSession(s.body); }); }
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
