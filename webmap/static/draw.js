/* geo_mz web map: commanders draw road closures (line or polygon) with Leaflet-Geoman (vendored,
   offline). A drawn shape is a draft: the server lists the roads it would cut by the relief
   engine's own rule (POST /analysis/closure-preview) and they are highlighted; then it is saved
   (POST), or dropped. A saved closure's popup offers "edit shape" (PATCH with If-Match, previewed
   the same way) next to map.js's "lift" (DELETE with If-Match).
   Why the preview is computed on the server: see webmap/core/closures.py. Text via textContent. */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map || !L.PM) return;
  var map = hook.map, st = hook.state;
  // Geoman equips maps created after it loads; map.js made this one before, so equip it here
  if (!map.pm) map.pm = new L.PM.Map(map);
  var en = document.body.dataset.lang === "en";
  var T = en
    ? { title: "Draw a road closure", line: "Line", polygon: "Area", hint: "Draw a line along the road or an area over it; the roads it cuts are shown before saving.",
        reason: "Reason", effect: "Effect", closed: "closed", slowed: "slowed (half speed)", save: "Save closure", cancel: "Discard",
        cuts: "Roads cut", none: "No road of the network is cut: move the shape onto the road.", edges: "network pieces", unnamed: "unnamed road",
        working: "Computing the roads cut…", saved: "Closure saved", edit: "Edit shape", update: "Save changes", lifted: "Closure lifted",
        big: "This closure covers a large part of the district. Save it anyway?", need_reason: "Give a reason" }
    : { title: "标绘道路中断", line: "线", polygon: "面", hint: "沿道路画线或圈出范围；保存前先列出将被阻断的道路。",
        reason: "原因", effect: "影响", closed: "中断", slowed: "限行（减速一半）", save: "保存中断", cancel: "放弃",
        cuts: "将阻断的道路", none: "未阻断路网中的任何道路：请把图形移到道路上。", edges: "个路段", unnamed: "未命名道路",
        working: "正在计算受影响道路…", saved: "已保存道路中断", edit: "编辑形状", update: "保存修改", lifted: "已解除中断",
        big: "该中断范围占辖区比例较大，确认保存？", need_reason: "请填写原因" };
  var ROLES = ["viewer", "reporter", "commander", "admin"];
  function isCommander() { return ROLES.indexOf((st.session || {}).role) >= 2; }
  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }

  try { map.pm.setLang(en ? "en" : "zh"); } catch (e) { /* language pack missing: English */ }
  map.pm.setGlobalOptions({ snappable: false, allowSelfIntersection: false, templineStyle: { color: "#d7301f" }, hintlineStyle: { color: "#d7301f", dashArray: "5 5" },
    pathOptions: { color: "#d7301f", weight: 4, fillOpacity: 0.15 } });
  var preview = L.layerGroup().addTo(map); // the cut roads, highlighted
  var draft = null; // { layer, id (editing a saved closure), etag }
  var seq = 0;
  var state = hook.draw = { preview: null, busy: false }; // for the browser tests

  // the panel box (commanders only)
  var box = el("section", null, "draw-box"); box.id = "draw"; box.hidden = true;
  box.appendChild(el("h2", T.title));
  var tools = el("div", null, "draw-tools");
  var bLine = el("button", T.line), bPoly = el("button", T.polygon);
  bLine.type = bPoly.type = "button"; bLine.id = "draw-line"; bPoly.id = "draw-polygon";
  tools.appendChild(bLine); tools.appendChild(bPoly); box.appendChild(tools);
  box.appendChild(el("p", T.hint, "hint"));
  var form = el("form"); form.id = "draw-form"; form.hidden = true;
  var reason = el("input"); reason.name = "reason"; reason.maxLength = 200; reason.placeholder = T.reason;
  var effect = el("select"); effect.name = "effect";
  [["closed", T.closed], ["slowed", T.slowed]].forEach(function (p) { var o = el("option", p[1]); o.value = p[0]; effect.appendChild(o); });
  var lr = el("label"); lr.appendChild(el("span", T.reason + " ")); lr.appendChild(reason);
  var le = el("label"); le.appendChild(el("span", T.effect + " ")); le.appendChild(effect);
  var cuts = el("div", null, "draw-cuts"); cuts.id = "draw-cuts";
  var bSave = el("button", T.save), bCancel = el("button", T.cancel);
  bSave.type = "submit"; bSave.id = "draw-save"; bCancel.type = "button"; bCancel.id = "draw-cancel";
  var msg = el("p", null, "msg"); msg.id = "draw-msg";
  [lr, le, cuts, bSave, bCancel, msg].forEach(function (x) { form.appendChild(x); });
  box.appendChild(form);
  var panel = document.getElementById("incidents") || document.getElementById("panel");
  panel.parentNode.insertBefore(box, panel);

  function showRole() { box.hidden = !isCommander(); if (box.hidden) discard(); }
  var who = document.getElementById("who-name");
  if (who) new MutationObserver(showRole).observe(who, { childList: true, characterData: true, subtree: true });
  showRole();

  function start(shape) {
    discard();
    map.pm.enableDraw(shape, { finishOn: shape === "Line" ? "dblclick" : null });
  }
  bLine.onclick = function () { start("Line"); };
  bPoly.onclick = function () { start("Polygon"); };

  function geometryOf(layer) { return layer.toGeoJSON().geometry; }
  function runPreview() {
    if (!draft) return;
    var mine = ++seq;
    state.busy = true; state.preview = null;
    cuts.textContent = T.working;
    hook.call("POST", "analysis/closure-preview", { type: "Feature", geometry: geometryOf(draft.layer), properties: { effect: effect.value } }).then(function (r) {
      if (mine !== seq) return; // a newer shape is being previewed
      state.busy = false;
      preview.clearLayers(); cuts.textContent = "";
      if (!r.ok) { msg.className = "msg"; msg.textContent = hook.problem(r); return; }
      state.preview = r.body;
      L.geoJSON(r.body.features, { interactive: false, style: function () { return { color: "#ffff00", weight: 9, opacity: 0.85 }; } }).addTo(preview);
      L.geoJSON(r.body.features, { interactive: false, style: function () { return { color: "#b2182b", weight: 4, opacity: 1 }; } }).addTo(preview);
      if (!r.body.roads.length) { cuts.appendChild(el("p", T.none, "msg")); return; }
      cuts.appendChild(el("b", T.cuts + " (" + r.body.roads_count + " · " + r.body.edges + " " + T.edges + " · " + (r.body.length_m / 1000).toFixed(1) + " km)"));
      var ol = el("ol"); ol.id = "draw-roads";
      r.body.roads.forEach(function (x) {
        ol.appendChild(el("li", (x.name || T.unnamed) + " · " + x.road_id + " · " + Math.round(x.length_m) + " m"));
      });
      cuts.appendChild(ol);
    });
  }
  function open(layer, id, etag, props) {
    draft = { layer: layer, id: id || null, etag: etag || null };
    form.hidden = false; msg.textContent = "";
    reason.value = (props && props.reason) || ""; effect.value = (props && props.effect) || "closed";
    bSave.textContent = id ? T.update : T.save;
    layer.on("pm:edit", runPreview);
    runPreview();
  }
  function discard() {
    seq++;
    if (draft) { map.pm.disableDraw(); draft.layer.pm.disable(); map.removeLayer(draft.layer); }
    draft = null; preview.clearLayers(); form.hidden = true; state.preview = null; state.busy = false;
  }
  bCancel.onclick = discard;
  effect.onchange = runPreview;
  map.on("pm:create", function (e) {
    if (!isCommander()) { map.removeLayer(e.layer); return; }
    e.layer.pm.enable({ allowSelfIntersection: false }); // still adjustable before saving
    open(e.layer);
  });

  function save(confirmed) {
    if (!reason.value.trim()) { msg.className = "msg"; msg.textContent = T.need_reason; reason.focus(); return; }
    var props = { reason: reason.value.trim(), effect: effect.value }, geometry = geometryOf(draft.layer);
    var req = draft.id
      ? hook.call("PATCH", "collections/road_closures/items/" + encodeURIComponent(draft.id), { geometry: geometry, properties: props }, draft.etag)
      : hook.call("POST", "collections/road_closures/items", { type: "Feature", geometry: geometry, properties: props, confirm: !!confirmed });
    req.then(function (r) {
      if (r.status === 409 && r.body.code === "confirm_required" && !confirmed) {
        if (window.confirm(T.big + "\n" + hook.problem(r))) save(true);
        return;
      }
      if (!r.ok) { msg.className = "msg"; msg.textContent = hook.problem(r); return; }
      discard();
      var ok = el("p", T.saved, "msg ok"); ok.id = "draw-saved"; box.appendChild(ok);
      setTimeout(function () { if (ok.parentNode) ok.parentNode.removeChild(ok); }, 4000);
    });
  }
  form.onsubmit = function (ev) { ev.preventDefault(); if (draft) save(false); };

  // "Edit shape" in a saved closure's popup: an editable copy, previewed, saved with If-Match.
  map.on("popupopen", function (e) {
    var src = e.popup._source, f = src && src.feature, g = st.groups.road_closures;
    if (!f || !g || !g.hasLayer(src) || !isCommander()) return;
    var node = e.popup.getElement(), content = node && node.querySelector(".leaflet-popup-content");
    content = content && (content.firstElementChild || content); // map.js's box (bound as a function)
    if (!content || content.querySelector(".draw-edit")) return;
    var b = el("button", T.edit, "draw-edit"); b.type = "button";
    b.onclick = function () {
      var path = "collections/road_closures/items/" + encodeURIComponent(f.id);
      hook.call("GET", path).then(function (cur) {
        if (!cur.ok) { alert(hook.problem(cur)); return; }
        map.closePopup(); discard();
        var copy = L.geoJSON(cur.body, { style: function () { return { color: "#d7301f", weight: 4, fillOpacity: 0.15 }; } }).getLayers()[0];
        copy.addTo(map); copy.pm.enable({ allowSelfIntersection: false });
        open(copy, f.id, cur.etag, cur.body.properties);
      });
    };
    content.appendChild(b);
  });
})();
