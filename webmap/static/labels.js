/* geo_mz web map: labels of the district, towns and villages by zoom (names from admin_units).
   The district's names below zoom 11, towns from 11, villages from 13.5; a label that would
   overlap one already placed is left out (towns first), so the map never fills with text.
   Labels sit in their own pane above the points and take no clicks (map.css). */
(function () {
  "use strict";
  var hook = window.geoMzMap;
  if (!hook || !hook.map) return;
  var map = hook.map, lang = document.body.dataset.lang === "en" ? "en" : "zh";
  var TOWN_ZOOM = 11, VILLAGE_ZOOM = 13.5;
  var units = [], group = L.layerGroup().addTo(map), timer = null;
  hook.state.labels = { town: 0, village: 0, county: 0 };

  // centroid of the largest outer ring (area-weighted), as [lat, lon]
  function anchor(geom) {
    var polys = geom.type === "Polygon" ? [geom.coordinates] : geom.type === "MultiPolygon" ? geom.coordinates : [];
    var best = null, bestA = 0;
    polys.forEach(function (rings) {
      var r = rings[0], a = 0, cx = 0, cy = 0;
      for (var i = 0, j = r.length - 1; i < r.length; j = i++) {
        var f = r[j][0] * r[i][1] - r[i][0] * r[j][1];
        a += f; cx += (r[j][0] + r[i][0]) * f; cy += (r[j][1] + r[i][1]) * f;
      }
      if (Math.abs(a) > bestA) { bestA = Math.abs(a); best = [cy / (3 * a), cx / (3 * a)]; }
    });
    return best;
  }
  function level(code) { // 6-digit county, 9-digit town, 12-digit village codes
    var n = String(code || "").length;
    return n >= 12 ? "village" : n >= 9 ? "town" : "county";
  }
  function place() {
    group.clearLayers();
    var z = map.getZoom(), bounds = map.getBounds(), boxes = [], shown = { town: 0, village: 0, county: 0 };
    var want = function (lv) { return lv === "county" ? z < TOWN_ZOOM : lv === "town" ? z >= TOWN_ZOOM : z >= VILLAGE_ZOOM; };
    units.forEach(function (u) {
      if (!want(u.level) || !bounds.contains(u.at)) return;
      var p = map.latLngToContainerPoint(u.at), w = u.name.length * (u.level === "village" ? 12 : 14) + 8, h = 18;
      var box = [p.x - w / 2, p.y - h / 2, p.x + w / 2, p.y + h / 2];
      if (boxes.some(function (b) { return b[0] < box[2] && box[0] < b[2] && b[1] < box[3] && box[1] < b[3]; })) return;
      boxes.push(box); shown[u.level]++;
      var span = document.createElement("span"); span.textContent = u.name;
      L.marker(u.at, { interactive: false, keyboard: false, pane: "geomz-labels",
        icon: L.divIcon({ className: "map-label " + u.level, html: span, iconSize: [w, h], iconAnchor: [w / 2, h / 2] }) }).addTo(group);
    });
    hook.state.labels = shown; // for the browser tests
  }
  function soon() { clearTimeout(timer); timer = setTimeout(place, 60); }
  hook.call("GET", "map/layers/admin_units?lang=" + lang).then(function (r) {
    if (!r.ok) return; // the admin_units layer itself shows the failure as a red note
    var order = { county: 0, town: 1, village: 2 };
    units = r.body.features.map(function (f) {
      var p = f.properties.p || {};
      return { name: p.name || "", level: level(p.adcode), at: f.geometry ? anchor(f.geometry) : null };
    }).filter(function (u) { return u.name && u.at; }).sort(function (a, b) { return order[a.level] - order[b.level]; });
    map.whenReady(place); // the names may arrive before the map has its first view
  });
  map.on("zoomend moveend", soon);
})();
