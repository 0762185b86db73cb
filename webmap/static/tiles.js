/* geo_mz web map: a small tile loader for large layers (GET map/tiles/{layer}/{z}/{x}/{y}.json).
   Fetches the tiles in view on every moveend (each drawn as its own L.geoJSON inside the
   layer's group, with the group's styles and popups), drops tiles out of view or of another
   zoom, and refetches the visible tiles an edit touches (the SSE event's "bboxes"). The
   browser revalidates with the tile's ETag (the server answers 304 when nothing changed). */
(function () {
  "use strict";
  var MAX_Z = 18;
  function tileBounds(z, x, y) {
    var n = Math.pow(2, z), lat = function (t) { return 180 / Math.PI * Math.atan(Math.sinh(Math.PI * (1 - 2 * t / n))); };
    return [x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)];
  }
  function tileOf(lon, lat, z) {
    var n = Math.pow(2, z), r = Math.max(-85.0511, Math.min(85.0511, lat)) * Math.PI / 180;
    var x = Math.floor((lon + 180) / 360 * n), y = Math.floor((1 - Math.asinh(Math.tan(r)) / Math.PI) / 2 * n);
    return [Math.min(Math.max(x, 0), n - 1), Math.min(Math.max(y, 0), n - 1)];
  }
  function meets(a, b) { return a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3]; }

  /* opts: map, group (an L.geoJSON whose options draw the features), url(z, x, y) → path,
     fetchJson(path) → Promise of {ok, status, body}, onBody(body) (fields and legend),
     onError(response) (a tile request failed: the page shows it). */
  function TileLoader(opts) {
    this.o = opts; this.tiles = {}; this.gen = 0;
  }
  TileLoader.prototype.visible = function () {
    var map = this.o.map, z = Math.max(0, Math.min(MAX_Z, Math.round(map.getZoom())));
    var b = map.getBounds(), w = Math.max(-180, b.getWest()), e = Math.min(180, b.getEast());
    var a = tileOf(w, b.getNorth(), z), c = tileOf(e, b.getSouth(), z), out = [];
    for (var x = a[0]; x <= c[0]; x++) for (var y = a[1]; y <= c[1]; y++) out.push([z, x, y]);
    return out;
  };
  TileLoader.prototype.fetch = function (t, force) {
    var self = this, key = t.join("/"), gen = this.gen, old = this.tiles[key];
    if (old && !force) return Promise.resolve();
    return this.o.fetchJson(this.o.url(t[0], t[1], t[2])).then(function (r) {
      if (gen !== self.gen) return;
      if (!r.ok) { if (self.o.onError) self.o.onError(r); return; } // a tile drawn before stays
      var cur = self.tiles[key];
      if (cur) self.o.group.removeLayer(cur.layer);
      var lyr = L.geoJSON(r.body, self.o.group.options);
      self.tiles[key] = { layer: lyr, bbox: tileBounds(t[0], t[1], t[2]) };
      self.o.group.addLayer(lyr);
      if (self.o.onBody) self.o.onBody(r.body);
    });
  };
  /* Load the tiles in view; drop the others. */
  TileLoader.prototype.update = function () {
    var self = this, want = {}, list = this.visible();
    list.forEach(function (t) { want[t.join("/")] = true; });
    Object.keys(this.tiles).forEach(function (k) {
      if (!want[k]) { self.o.group.removeLayer(self.tiles[k].layer); delete self.tiles[k]; }
    });
    return Promise.all(list.map(function (t) { return self.fetch(t, false); }));
  };
  /* An edit touched these boxes: refetch the visible tiles they meet (all when none given). */
  TileLoader.prototype.invalidate = function (bboxes) {
    var self = this, pad;
    return Promise.all(this.visible().filter(function (t) {
      if (!bboxes || !bboxes.length) return true;
      var tb = tileBounds(t[0], t[1], t[2]); pad = (tb[2] - tb[0]) / 64; // the server's 4 px margin
      tb = [tb[0] - pad, tb[1] - pad, tb[2] + pad, tb[3] + pad];
      return bboxes.some(function (b) { return meets(tb, b); });
    }).map(function (t) { return self.fetch(t, true); }));
  };
  TileLoader.prototype.clear = function () {
    this.gen++; this.tiles = {}; this.o.group.clearLayers();
  };
  window.GeoMzTiles = { TileLoader: TileLoader, tileBounds: tileBounds, tileOf: tileOf };
})();
