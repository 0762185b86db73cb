/* geo_mz web map: place-name search box (GET /names/search). Chinese, pinyin or initials;
   a result that is an admin unit of the workspace zooms the map there and outlines the unit.
   Loaded after map.js (uses its window.geoMzMap hook); text is inserted with textContent. */
(function () {
  "use strict";
  var hook = window.geoMzMap, $ = function (id) { return document.getElementById(id); };
  var input = $("name-q"), list = $("name-results"), msg = $("name-msg"), local = $("name-local");
  if (!hook || !input) return;
  var map = hook.map, base = document.body.dataset.base || "/";
  var lang = document.body.dataset.lang === "en" ? "en" : "zh";
  var T = {
    zh: { building: "地名索引正在建立，稍后自动重试…", none: "没有找到", outside: "不在本工作区范围内，无法定位",
      local: "仅本辖区" },
    en: { building: "The place-name index is being built; retrying shortly…", none: "No match",
      outside: "Not in this workspace; cannot zoom there", local: "This area only" }
  };
  var t = function (k) { return T[lang][k]; };
  var seq = 0, timer = null, highlight = null;
  if ($("name-local-label")) $("name-local-label").textContent = t("local");

  function el(tag, text, cls) { var e = document.createElement(tag); if (text != null) e.textContent = text; if (cls) e.className = cls; return e; }
  function get(path) {
    return fetch(base + path, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (r) {
        return r.json().then(function (b) { return { ok: r.ok, status: r.status, body: b, retry: r.headers.get("Retry-After") }; });
      });
  }
  function show(hit) {
    if (!hit.bbox) { msg.textContent = t("outside"); return; }
    msg.textContent = "";
    var b = hit.bbox;
    map.fitBounds([[b[1], b[0]], [b[3], b[2]]], { maxZoom: 16 });
    get("collections/admin_units/items/" + encodeURIComponent(hit.code)).then(function (r) {
      if (highlight) { map.removeLayer(highlight); highlight = null; }
      if (!r.ok) return;
      highlight = L.geoJSON(r.body, { interactive: false, style: { color: "#ff00ff", weight: 4, dashArray: "6 4", fillColor: "#ff00ff", fillOpacity: 0.08 } }).addTo(map);
      hook.state.nameHighlight = hit.code; // for the browser tests
    });
  }
  function render(results) {
    list.textContent = "";
    if (!results.length) { msg.textContent = t("none"); return; }
    msg.textContent = "";
    results.forEach(function (hit) {
      var li = el("li", null, hit.bbox ? "here" : "away");
      li.appendChild(el("b", hit.name));
      li.appendChild(el("small", hit.full_name + " · " + hit.code));
      li.tabIndex = 0;
      li.onclick = function () { show(hit); };
      li.onkeydown = function (ev) { if (ev.key === "Enter") show(hit); };
      list.appendChild(li);
    });
  }
  function run() {
    var q = input.value.trim(), my = ++seq;
    clearTimeout(timer);
    if (!q) { list.textContent = ""; msg.textContent = ""; return; }
    var path = "names/search?limit=20&q=" + encodeURIComponent(q);
    var cfg = hook.state.config;
    if (local && local.checked && cfg && cfg.adcode) path += "&code_prefix=" + encodeURIComponent(String(cfg.adcode).replace(/(00)+$/, "") || cfg.adcode);
    get(path).then(function (r) {
      if (my !== seq) return; // a newer query was typed
      if (r.status === 503) { // being built, or failed to load (shown as such); both retried
        var failed = r.body && r.body.code === "index_failed";
        msg.textContent = failed ? r.body.description : t("building");
        timer = setTimeout(run, 1000 * (parseInt(r.retry, 10) || 5));
        return;
      }
      if (!r.ok) { list.textContent = ""; msg.textContent = (r.body && r.body.description) || ("HTTP " + r.status); return; }
      render(r.body.results);
    }).catch(function (e) { msg.textContent = String(e); });
  }
  input.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(run, 250); });
  if (local) local.addEventListener("change", run);
  $("name-search-form").addEventListener("submit", function (ev) { ev.preventDefault(); run(); });
})();
