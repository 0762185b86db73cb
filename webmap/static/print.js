/* geo_mz web map: "打印简报 / Print brief" for the 信息专报 (issue 16, item 6).
 *
 * One click fills a brief header (title, time in Beijing time, the live situation and the
 * planning figures from GET map/summary, the shown extent) and opens the browser's print dialog;
 * print.css (linked with media="print") hides the controls and lays the header over the map, so
 * "Save as PDF" gives the brief. While printing, the map keeps the extent the user was looking at.
 * Reads window.geoMzMap (map.js) when it is there; works without it (no extent kept).
 */
(function () {
  "use strict";
  var lang = document.body.dataset.lang === "en" ? "en" : "zh";
  var base = document.body.dataset.base || "/";
  var T = {
    zh: { button: "打印简报", title: "灾害应急指挥地图 · 信息专报", time: "北京时间",
          live: "现场态势", planning: "规划指标", incidents: "最新灾情", extent: "图幅范围",
          incidents_open: "未办结灾情", closures: "道路中断", shelters_open: "开放避难场所",
          occupancy: "避难场所已安置人数", places_free: "避难场所剩余容量",
          failed: "态势数据读取失败，简报只含地图", none: "无" },
    en: { button: "Print brief", title: "Disaster command map · situation brief", time: "Beijing time",
          live: "Live situation", planning: "Planning figures", incidents: "Latest incidents",
          extent: "Extent", incidents_open: "Open incidents", closures: "Road closures",
          shelters_open: "Open shelters", occupancy: "People in shelters",
          places_free: "Shelter places free",
          failed: "could not read the situation figures; the brief shows the map only",
          none: "none" }
  }[lang];
  var LIVE = [["incidents_open", "incidents_open"], ["closures", "closures"],
              ["shelters_open", "shelters_open"], ["shelter_occupancy", "occupancy"],
              ["shelter_places_free", "places_free"]];
  var MAX_INCIDENTS = 8;

  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  /** "2026-12-06 15:04" in Asia/Shanghai (UTC+8), whatever the computer's time zone. */
  function beijing(d) {
    var parts = {};
    new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Shanghai", year: "numeric", month: "2-digit",
      day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23" })
      .formatToParts(d).forEach(function (p) { parts[p.type] = p.value; });
    return parts.year + "-" + parts.month + "-" + parts.day + " " + parts.hour + ":" + parts.minute;
  }

  /** A stored time stamp: ISO 8601; one without an offset is UTC (how the server stores them). */
  function utc(iso) {
    var s = String(iso);
    return new Date(/(Z|[+-]\d\d:?\d\d)$/.test(s) ? s : s + "Z");
  }

  function brief() {
    var b = document.getElementById("print-brief");
    if (!b) {
      b = el("section"); b.id = "print-brief"; b.hidden = true; // shown by print.css only
      document.body.insertBefore(b, document.body.firstChild);
    }
    return b;
  }

  function figures(dl, rows) {
    rows.forEach(function (r) { dl.appendChild(el("dt", r[0])); dl.appendChild(el("dd", r[1], r[2])); });
  }

  function fill(summary, now) {
    var b = brief(), hook = window.geoMzMap;
    b.textContent = "";
    var h = el("header");
    h.appendChild(el("h1", (document.getElementById("title") || {}).textContent || T.title));
    h.appendChild(el("p", T.time + " " + beijing(now) + " (UTC+8)", "pb-time"));
    b.appendChild(h);
    var cols = el("div", null, "pb-cols");
    if (!summary) {
      cols.appendChild(el("p", T.failed, "pb-failed"));
    } else {
      var live = summary.live || {}, s1 = el("div"), dl1 = el("dl");
      s1.appendChild(el("h2", T.live));
      figures(dl1, LIVE.filter(function (p) { return live[p[0]] !== undefined; })
        .map(function (p) { return [T[p[1]], live[p[0]]]; }));
      s1.appendChild(dl1);
      var inc = (summary.incidents || []).slice(0, MAX_INCIDENTS), ol = el("ol");
      inc.forEach(function (i) {
        var when = i.reported_at ? beijing(utc(i.reported_at)) : "";
        ol.appendChild(el("li", [i.kind_label, i.status_label, i.description || "", when]
          .filter(Boolean).join(" · ")));
      });
      s1.appendChild(el("h2", T.incidents));
      s1.appendChild(inc.length ? ol : el("p", T.none));
      cols.appendChild(s1);
      var s2 = el("div"), dl2 = el("dl");
      s2.appendChild(el("h2", T.planning));
      figures(dl2, (summary.kpis || []).map(function (k) {
        return [k.label, k.value + (k.unit ? " " + k.unit : "") + (k.target ? " (" + k.target + ")" : ""),
                k.met === true ? "met" : k.met === false ? "unmet" : ""];
      }));
      s2.appendChild(dl2);
      cols.appendChild(s2);
    }
    b.appendChild(cols);
    if (hook && hook.map) {
      var bb = hook.map.getBounds();
      b.appendChild(el("p", T.extent + " " + [bb.getSouth(), bb.getWest(), bb.getNorth(), bb.getEast()]
        .map(function (v) { return v.toFixed(4); }).join(", ") + " (S, W, N, E; WGS 84)", "pb-extent"));
    }
  }

  // Keep the extent the user was looking at while the page is laid out for print, and back.
  var kept = null;
  function toPrint() {
    var hook = window.geoMzMap;
    if (!hook || !hook.map) return;
    if (!kept) kept = hook.map.getBounds();
    hook.map.invalidateSize({ animate: false });
    hook.map.fitBounds(kept, { animate: false, padding: [0, 0] });
  }
  function fromPrint() {
    var hook = window.geoMzMap;
    if (!hook || !hook.map || !kept) return;
    var b = kept; kept = null;
    hook.map.invalidateSize({ animate: false });
    hook.map.fitBounds(b, { animate: false });
  }
  var mq = window.matchMedia("print");
  var onChange = function (e) { if (e.matches) toPrint(); else fromPrint(); };
  if (mq.addEventListener) mq.addEventListener("change", onChange); else mq.addListener(onChange);
  window.addEventListener("beforeprint", toPrint);
  window.addEventListener("afterprint", fromPrint);

  function printBrief() {
    var now = new Date(), hook = window.geoMzMap;
    if (hook && hook.map) kept = hook.map.getBounds();
    return fetch(base + "map/summary?lang=" + lang, { headers: { Accept: "application/json" },
                                                      credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .catch(function () { return null; })
      .then(function (summary) {
        fill(summary, now);
        document.documentElement.classList.add("gm-brief-ready");
        window.print();
      });
  }

  function button() {
    var btn = el("button", T.button + (lang === "zh" ? " / Print brief" : " / 打印简报"), "print-brief-btn");
    btn.type = "button"; btn.id = "print-brief-btn";
    btn.title = lang === "zh" ? "当前视图与态势汇总，打印或另存为 PDF" : "Current view and situation summary, print or save as PDF";
    btn.addEventListener("click", function (e) { e.preventDefault(); e.stopPropagation(); printBrief(); });
    return btn;
  }

  var hook = window.geoMzMap;
  if (hook && hook.map && window.L) {
    // A Leaflet control: stacked with the other controls of its corner, never over them.
    var Ctl = L.Control.extend({ options: { position: "topleft" }, onAdd: function () {
      var box = L.DomUtil.create("div", "leaflet-bar print-brief-control");
      box.appendChild(button());
      L.DomEvent.disableClickPropagation(box);
      return box;
    } });
    new Ctl().addTo(hook.map);
  } else {
    document.body.appendChild(button());
  }
  window.geoMzPrintBrief = printBrief; // for tests and keyboard shortcuts
})();
