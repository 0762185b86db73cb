/* geo_mz web map: the incident desk and shelter controls.
   - Incidents (GET /map/incidents): filters by kind, status, town and time (applied to the list
     and to the map's pins), counts per town, and the lifecycle steps a commander may take
     (PATCH with If-Match: verify, assign to a town or a named team, resolve, close); an admin
     may delete. Refusals show the server's bilingual message.
   - A new incident (live `change` event, relayed by map.js as `geomz:change`) is highlighted in
     the list and on the map, with a short beep unless muted (muted by default; remembered).
   - Shelter popups get an open/close switch and an occupancy bar against capacity (PATCH).
   Text via textContent only. */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map) return;
  var map = hook.map, st = hook.state;
  var en = document.body.dataset.lang === "en", lang = en ? "en" : "zh";
  var T = en
    ? { title: "Incident desk", kind: "Kind", status: "Status", town: "Town", time: "Time", all: "all", h1: "last hour", h6: "last 6 h", h24: "last 24 h",
        counts: "Per town (open / all)", outside: "outside the towns", none: "No incident matches the filters.", sound_on: "♪ sound on", sound_off: "♪ muted",
        to: { verified: "Verify", assigned: "Assign", resolved: "Resolve", closed: "Close" }, reassign: "Reassign", unit: "Unit (town or team)", team: "or a team's name",
        del: "Delete", sure: "Delete this report? (the audit log keeps it)", assigned_to: "assigned to", shown: "shown",
        open: "Open", closed_s: "Closed", open_it: "Open shelter", close_it: "Close shelter", capacity: "Capacity", occupancy: "Occupancy", stale: "Changed by someone else; reloaded, try again" }
    : { title: "灾情处置", kind: "类型", status: "状态", town: "乡镇", time: "时间", all: "全部", h1: "近1小时", h6: "近6小时", h24: "近24小时",
        counts: "各乡镇（未办结 / 全部）", outside: "乡镇范围外", none: "没有符合筛选条件的灾情。", sound_on: "♪ 提示音开", sound_off: "♪ 已静音",
        to: { verified: "核实", assigned: "派单", resolved: "处置完毕", closed: "办结" }, reassign: "改派", unit: "承办单位（乡镇或队伍）", team: "或填写队伍名称",
        del: "删除", sure: "删除该报告？（审计日志仍保留）", assigned_to: "承办", shown: "显示",
        open: "启用中", closed_s: "未启用", open_it: "启用场所", close_it: "关闭场所", capacity: "可容纳", occupancy: "当前安置", stale: "已被他人修改，已重新载入，请再试" };
  var ROLES = ["viewer", "reporter", "commander", "admin"];
  function can(role) { var r = (st.session || {}).role; return !!r && ROLES.indexOf(r) >= ROLES.indexOf(role); }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  function bj(iso) {
    if (hook.bjTime) return hook.bjTime(iso);
    var d = new Date(iso); if (isNaN(d)) return iso || "";
    var b = new Date(d.getTime() + 8 * 3600e3);
    return b.toISOString().slice(0, 16).replace("T", " ") + " (UTC+8)";
  }
  var desk = hook.incidents = { data: null, shown: [], fresh: {}, muted: localStorage.getItem("geomz-sound") !== "on", beeps: 0 };

  // -- the panel ---------------------------------------------------------------------------
  var box = el("section", null, "inc-desk"); box.id = "incident-desk";
  var head = el("h2", T.title); box.appendChild(head);
  var sound = el("button", null, "inc-sound"); sound.type = "button"; sound.id = "incident-sound";
  head.appendChild(sound);
  var filters = el("div", null, "inc-filters");
  function select(name, label) {
    var l = el("label"), s = el("select"); s.name = name; s.id = "inc-filter-" + name;
    l.appendChild(el("span", label + " ")); l.appendChild(s); filters.appendChild(l);
    s.onchange = render; return s;
  }
  var fKind = select("kind", T.kind), fStatus = select("status", T.status), fTown = select("town", T.town), fTime = select("time", T.time);
  [["", T.all], ["1", T.h1], ["6", T.h6], ["24", T.h24]].forEach(function (p) { var o = el("option", p[1]); o.value = p[0]; fTime.appendChild(o); });
  box.appendChild(filters);
  var counts = el("table", null, "inc-counts"); counts.id = "incident-counts"; box.appendChild(counts);
  var info = el("p", null, "hint"); info.id = "incident-shown"; box.appendChild(info);
  var list = el("ol", null, "inc-list"); list.id = "incident-desk-list"; box.appendChild(list);
  var msg = el("p", null, "msg"); msg.id = "incident-msg"; box.appendChild(msg);
  var anchor = document.getElementById("incidents");
  if (anchor) anchor.parentNode.insertBefore(box, anchor.nextSibling); else document.getElementById("panel").appendChild(box);

  function showSound() { sound.textContent = desk.muted ? T.sound_off : T.sound_on; sound.setAttribute("aria-pressed", String(!desk.muted)); }
  sound.onclick = function () { desk.muted = !desk.muted; localStorage.setItem("geomz-sound", desk.muted ? "off" : "on"); showSound(); };
  showSound();
  function beep() {
    desk.beeps++;
    if (desk.muted) return;
    try {
      var C = window.AudioContext || window.webkitAudioContext, ctx = desk.audio || (desk.audio = new C());
      var o = ctx.createOscillator(), g = ctx.createGain();
      o.frequency.value = 880; g.gain.value = 0.15; o.connect(g); g.connect(ctx.destination);
      o.start(); o.stop(ctx.currentTime + 0.25);
    } catch (e) { /* no audio device: the highlight still shows */ }
  }

  function fill(sel, rows, keep) {
    var cur = keep ? sel.value : "";
    sel.textContent = "";
    var o = el("option", T.all); o.value = ""; sel.appendChild(o);
    rows.forEach(function (r) { var x = el("option", r[1]); x.value = r[0]; sel.appendChild(x); });
    sel.value = cur;
  }
  function matches(i) {
    if (fKind.value && i.kind !== fKind.value) return false;
    if (fStatus.value && i.state !== fStatus.value) return false;
    if (fTown.value && String(i.town) !== fTown.value) return false;
    if (fTime.value && Date.now() - new Date(i.reported_at).getTime() > Number(fTime.value) * 3600e3) return false;
    return true;
  }
  function render() {
    var d = desk.data; if (!d) return;
    var shown = d.incidents.filter(matches), ids = {};
    desk.shown = shown.map(function (i) { ids[i.id] = true; return i.id; });
    info.textContent = T.shown + " " + shown.length + " / " + d.incidents.length;
    // counts per town, of what the filters show
    counts.textContent = "";
    var per = {}, order = [];
    shown.forEach(function (i) {
      var k = String(i.town);
      if (!per[k]) { per[k] = { name: i.town_name || T.outside, open: 0, all: 0 }; order.push(k); }
      per[k].all++; if (["reported", "verified", "assigned"].indexOf(i.state) >= 0) per[k].open++;
    });
    var cap = el("caption", T.counts); counts.appendChild(cap);
    order.sort(function (a, b) { return per[b].open - per[a].open || per[b].all - per[a].all; }).forEach(function (k) {
      var tr = el("tr"); tr.dataset.town = k;
      tr.appendChild(el("th", per[k].name)); tr.appendChild(el("td", per[k].open + " / " + per[k].all));
      counts.appendChild(tr);
    });
    list.textContent = "";
    if (!shown.length) list.appendChild(el("li", T.none, "hint"));
    shown.forEach(function (i) { list.appendChild(item(i)); });
    pins();
  }
  function item(i) {
    var li = el("li", null, "inc-item" + (desk.fresh[i.id] ? " new" : "")); li.dataset.id = i.id; li.dataset.state = i.state;
    var dot = el("span", null, "dot"); dot.style.background = i.color; li.appendChild(dot);
    li.appendChild(el("b", i.kind_label));
    li.appendChild(el("span", " · " + i.status_label, "inc-status"));
    li.appendChild(el("small", [i.town_name || T.outside, bj(i.reported_at), i.reporter || "",
      i.assigned_label ? T.assigned_to + " " + i.assigned_label : "", i.description || ""].filter(Boolean).join(" · ")));
    li.onclick = function (ev) { if (ev.target === li && i.lat != null) map.setView([i.lat, i.lon], Math.max(map.getZoom(), 15)); };
    var acts = el("div", null, "inc-actions");
    if (can(desk.data.transition_role)) {
      (desk.data.transitions[i.state] || []).forEach(function (to) {
        var b = el("button", to === "assigned" && i.state === "assigned" ? T.reassign : T.to[to] || to); b.type = "button"; b.dataset.to = to;
        b.onclick = function () { if (to === "assigned") assignForm(acts, i); else step(i, { status: to }); };
        acts.appendChild(b);
      });
    }
    if (can("admin")) {
      var x = el("button", T.del, "danger"); x.type = "button"; x.dataset.to = "delete";
      x.onclick = function () { if (window.confirm(T.sure)) step(i, null); };
      acts.appendChild(x);
    }
    if (acts.childNodes.length) li.appendChild(acts);
    return li;
  }
  function assignForm(acts, i) {
    if (acts.querySelector("form")) return;
    var f = el("form", null, "inc-assign"), s = el("select"), team = el("input"), ok = el("button", T.to.assigned);
    s.name = "unit"; team.name = "team"; team.placeholder = T.team; team.maxLength = 64; ok.type = "submit";
    var o = el("option", T.unit); o.value = ""; s.appendChild(o);
    desk.data.towns.forEach(function (t) { var x = el("option", t.name); x.value = t.code; s.appendChild(x); });
    if (i.town) s.value = i.town;
    f.appendChild(s); f.appendChild(team); f.appendChild(ok); acts.appendChild(f);
    f.onsubmit = function (ev) { ev.preventDefault(); step(i, { status: "assigned", assigned_to: team.value.trim() || s.value }); };
  }
  function step(i, body) {
    var path = "collections/incidents/items/" + encodeURIComponent(i.id);
    msg.className = "msg"; msg.textContent = "";
    hook.call("GET", path).then(function (cur) {
      if (!cur.ok) return cur;
      return body ? hook.call("PATCH", path, body, cur.etag) : hook.call("DELETE", path, undefined, cur.etag);
    }).then(function (r) {
      if (r.status === 409 && r.body.code === "stale_version") { msg.textContent = T.stale; }
      else if (!r.ok) { msg.textContent = hook.problem(r); }
      load();
    });
  }

  // pins on the map follow the filters
  function pins() {
    var g = st.groups.incidents; if (!g || !desk.data) return;
    var show = {}; desk.shown.forEach(function (id) { show[id] = true; });
    g.eachLayer(function (l) {
      var f = l.feature, e = l.getElement && l.getElement(); if (!f || !e) return;
      e.style.display = show[f.id] ? "" : "none";
      e.classList.toggle("inc-new", !!desk.fresh[f.id]);
    });
  }

  var known = null, timer = null;
  function load() {
    if (!st.config) { clearTimeout(timer); timer = setTimeout(load, 200); return; } // not loaded yet
    box.hidden = !(st.groups && st.groups.incidents); // no incidents layer: no desk (map.js says why)
    if (box.hidden) return;
    return hook.call("GET", "map/incidents?lang=" + lang).then(function (r) {
      if (!r.ok) { hook.note("incident-desk", T.title, hook.problem(r)); return; }
      hook.clearNote("incident-desk");
      var d = r.body, first = !desk.data;
      if (first) {
        fill(fKind, d.kinds.map(function (k) { return [k.code, k.label]; }));
        fill(fStatus, d.states.map(function (s) { return [s.code, s.label]; }));
        fill(fTown, d.towns.map(function (t) { return [t.code, t.name]; }).concat([["null", T.outside]]));
      }
      var now = {}, fresh = [];
      d.incidents.forEach(function (i) { now[i.id] = true; if (known && !known[i.id]) fresh.push(i.id); });
      known = now; desk.data = d;
      fresh.forEach(function (id) {
        desk.fresh[id] = true;
        setTimeout(function () { delete desk.fresh[id]; render(); }, 30000);
      });
      if (fresh.length) beep();
      render();
    });
  }
  function soon() { clearTimeout(timer); timer = setTimeout(load, 200); }
  document.addEventListener("geomz:change", function (e) { if (e.detail && e.detail.layer === "incidents") soon(); });
  document.addEventListener("geomz:live", soon);
  var who = document.getElementById("who-name");
  if (who) new MutationObserver(render).observe(who, { childList: true, characterData: true, subtree: true });
  map.whenReady(function () { var wait = setInterval(function () { // groups exist once the config loaded
    if (!st.groups || !st.groups.incidents) return;
    clearInterval(wait);
    st.groups.incidents.on("layeradd", function () { clearTimeout(desk.pinTimer); desk.pinTimer = setTimeout(pins, 50); });
  }, 200); });
  load();

  // -- shelters: open/close and an occupancy bar in the popup ----------------------------------
  map.on("popupopen", function (e) {
    var src = e.popup._source, f = src && src.feature, g = st.groups.shelters;
    if (!f || !g || !g.hasLayer(src)) return;
    var node = e.popup.getElement(), content = node && node.querySelector(".leaflet-popup-content");
    content = content && (content.firstElementChild || content); // map.js's box (bound as a function)
    if (!content || content.querySelector(".shelter-live")) return;
    var wrap = el("div", null, "shelter-live");
    content.insertBefore(wrap, content.children[1] || null);
    var path = "collections/shelters/items/" + encodeURIComponent(f.id);
    hook.call("GET", path).then(function (cur) {
      if (!cur.ok) { wrap.textContent = hook.problem(cur); return; }
      var p = cur.body.properties, cap = Number(p.capacity_persons) || 0, occ = Number(p.occupancy_persons) || 0;
      var isOpen = p.is_open !== false; // not set: counted as open, as the side panel does
      var state = el("span", isOpen ? T.open : T.closed_s, "shelter-state " + (isOpen ? "on" : "off"));
      wrap.appendChild(state);
      var bar = el("div", null, "cap-bar"), fillEl = el("i"), share = cap ? Math.min(1, occ / cap) : 0;
      fillEl.style.width = (share * 100).toFixed(1) + "%";
      fillEl.className = share >= 0.9 ? "full" : share >= 0.7 ? "high" : "";
      bar.appendChild(fillEl); bar.title = T.occupancy + " " + occ + " / " + T.capacity + " " + cap;
      wrap.appendChild(bar);
      wrap.appendChild(el("small", T.occupancy + " " + occ + " / " + T.capacity + " " + cap + (cap ? " (" + Math.round(share * 100) + "%)" : ""), "cap-text"));
      if (can("commander")) {
        var b = el("button", isOpen ? T.close_it : T.open_it, "shelter-toggle"); b.type = "button";
        b.onclick = function () {
          hook.call("PATCH", path, { is_open: !isOpen }, cur.etag).then(function (r) {
            if (!r.ok) { wrap.appendChild(el("p", r.status === 409 ? T.stale : hook.problem(r), "msg")); return; }
            map.closePopup();
          });
        };
        wrap.appendChild(b);
      }
    });
  });
})();
