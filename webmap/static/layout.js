/* geo_mz web map: layout. The layer list (top right) and the legend (bottom right) fold
   open/shut and share the map's height so they never cover each other or the controls.
   On a phone (≤ 700 px wide) both move into a bottom sheet with the side panel (tabs
   图层 / 图例 / 态势); the sheet folds down to its tabs so the map stays visible.
   "Use my location" (navigator.geolocation) centres the map there and, for a reporter,
   sets the report's place. */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map || !hook.control) return;
  var map = hook.map, en = document.body.dataset.lang === "en";
  var T = en ? { layers: "Layers", legend: "Legend", fold: "Fold / unfold", here: "Use my location", me: "You are here",
    noloc: "Your location is not available: ", unsupported: "this browser cannot tell its location" }
    : { layers: "图层", legend: "图例", fold: "折叠 / 展开", here: "使用我的位置", me: "我的位置",
      noloc: "无法获取您的位置：", unsupported: "此浏览器不支持定位" };
  var $ = function (id) { return document.getElementById(id); };
  var layersBox = hook.control.getContainer(), legendBox = document.querySelector(".leaflet-control.legend");
  var phone = window.matchMedia("(max-width: 700px)");
  var GAP = 10;

  // fold buttons
  function foldButton(box, label, cls) {
    var b = document.createElement("button");
    b.type = "button"; b.className = "fold " + cls; b.textContent = label; b.title = T.fold;
    b.setAttribute("aria-expanded", "true");
    b.onclick = function () {
      var folded = box.classList.toggle("folded");
      b.setAttribute("aria-expanded", String(!folded)); fit();
    };
    L.DomEvent.disableClickPropagation(b);
    return b;
  }
  layersBox.insertBefore(foldButton(layersBox, T.layers, "fold-layers"), layersBox.firstChild);
  var legendFold = foldButton(legendBox, T.legend, "fold-legend");
  // the legend is redrawn from scratch (map.js drawLegend): keep the fold button on top
  function keepLegendButton() { if (legendBox.firstChild !== legendFold) legendBox.insertBefore(legendFold, legendBox.firstChild); fit(); }
  document.addEventListener("geomz:legend", keepLegendButton);
  keepLegendButton();

  // Heights: the layer list gets up to half of the map, the legend what is left below it
  // (above the attribution), so their boxes cannot meet.
  function fit() {
    var list = layersBox.querySelector(".leaflet-control-layers-list"), body = legendBox.querySelector(".legend-body");
    if (phone.matches) { if (list) list.style.maxHeight = ""; if (body) body.style.maxHeight = ""; return; }
    var h = map.getSize().y;
    if (list) list.style.maxHeight = Math.max(80, Math.round(h * 0.5 - 40)) + "px";
    var bottomOfLayers = layersBox.offsetTop + layersBox.offsetHeight + 10; // topright corner starts at 0
    var attribution = document.querySelector(".leaflet-bottom.leaflet-right .leaflet-control-attribution");
    var below = (attribution ? attribution.offsetHeight : 0) + GAP * 2;
    var title = legendBox.offsetHeight - (body ? body.offsetHeight : 0);
    if (body) body.style.maxHeight = Math.max(40, h - bottomOfLayers - below - title - GAP) + "px";
  }
  map.on("resize", fit);

  // phone: the bottom sheet
  var homes = { layers: [layersBox.parentNode, layersBox], legend: [legendBox.parentNode, legendBox] };
  function tab(name) {
    var open = document.body.dataset.sheet === name && document.body.classList.contains("sheet-open");
    document.body.classList.toggle("sheet-open", !open);
    document.body.dataset.sheet = name;
    document.querySelectorAll("#sheet-tabs button").forEach(function (b) {
      b.setAttribute("aria-pressed", String(!open && b.dataset.tab === name));
    });
    setTimeout(function () { map.invalidateSize(); }, 0);
  }
  document.querySelectorAll("#sheet-tabs button").forEach(function (b) { b.onclick = function () { tab(b.dataset.tab); }; });
  function arrange() {
    if (phone.matches) {
      $("sheet-layers").appendChild(layersBox); $("sheet-legend").appendChild(legendBox);
      layersBox.classList.remove("folded"); legendBox.classList.remove("folded");
      if (!document.body.dataset.sheet) document.body.dataset.sheet = "panel";
    } else {
      // back to their corners, where Leaflet put them (the legend above the attribution)
      if (layersBox.parentNode !== homes.layers[0]) homes.layers[0].insertBefore(layersBox, homes.layers[0].firstChild);
      if (legendBox.parentNode !== homes.legend[0]) homes.legend[0].insertBefore(legendBox, homes.legend[0].firstChild);
      document.body.classList.remove("sheet-open");
    }
    map.invalidateSize(); fit();
  }
  if (phone.addEventListener) phone.addEventListener("change", arrange); else phone.addListener(arrange);
  arrange();

  // use my location
  var me = null, locate = L.control({ position: "topleft" });
  locate.onAdd = function () {
    var d = L.DomUtil.create("div", "leaflet-bar locate"), b = L.DomUtil.create("a", "", d);
    b.href = "#"; b.id = "locate"; b.title = T.here; b.setAttribute("role", "button"); b.setAttribute("aria-label", T.here);
    b.textContent = "◎";
    L.DomEvent.disableClickPropagation(d);
    L.DomEvent.on(b, "click", function (ev) {
      L.DomEvent.preventDefault(ev);
      if (!navigator.geolocation) { hook.note("locate", T.noloc + T.unsupported); return; }
      navigator.geolocation.getCurrentPosition(function (pos) {
        hook.clearNote("locate");
        var ll = L.latLng(pos.coords.latitude, pos.coords.longitude);
        if (me) me.setLatLng(ll).setRadius(9);
        else me = L.circleMarker(ll, L.extend({ radius: 9, color: "#fff", weight: 3, fillColor: "#1a73e8", fillOpacity: 1, interactive: false }, hook.paneOptions("incidents"))).addTo(map);
        me.bindTooltip(T.me);
        map.setView(ll, Math.max(map.getZoom(), 16));
        if (hook.setReportAt) hook.setReportAt(ll); // a reporter's report is placed here
        hook.state.located = [ll.lat, ll.lng];
      }, function (err) { hook.note("locate", T.noloc + err.message); }, { enableHighAccuracy: true, timeout: 15000 });
    });
    return d;
  };
  locate.addTo(map);
  hook.fit = fit;
})();
