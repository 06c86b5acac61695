/* Shared helpers for the map pages: config from a JSON block, DOM building with textContent only. */
(function () {
  "use strict";

  /** Parse the page's <script type="application/json" id="..."> configuration block. */
  function readConfig(id) {
    var node = document.getElementById(id);
    if (!node) { return null; }
    try { return JSON.parse(node.textContent); } catch (e) { return null; }
  }

  /** Build an element: el("a", {href: "/x", className: "c"}, ["text", childNode]). Text is never parsed as HTML. */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    var key;
    attrs = attrs || {};
    for (key in attrs) {
      if (!Object.prototype.hasOwnProperty.call(attrs, key) || attrs[key] === null || attrs[key] === undefined || attrs[key] === false) { continue; }
      if (key === "className") { node.className = attrs[key]; }
      else if (key === "text") { node.textContent = String(attrs[key]); }
      else { node.setAttribute(key, attrs[key] === true ? "" : String(attrs[key])); }
    }
    (children || []).forEach(function (child) {
      if (child === null || child === undefined || child === false) { return; }
      node.appendChild(typeof child === "string" ? document.createTextNode(child) : child);
    });
    return node;
  }

  function sampleBadge(label) {
    return el("span", {className: "badge-sample", text: label || "サンプル（架空）"});
  }

  /** A tile layer from the configured URL template and (operator-configured) attribution. */
  function tileLayer(config) {
    return window.L.tileLayer(config.tileUrl, {
      attribution: config.tileAttribution,
      maxZoom: 18,
      minZoom: 5,
      crossOrigin: false
    });
  }

  function intersects(a, b) {
    return a[0] <= b[2] && b[0] <= a[2] && a[1] <= b[3] && b[1] <= a[3];
  }

  /**
   * The map's background: the configured tiles, or (when tiles are off, fail or do not arrive in time)
   * the built-in base map drawn from the shipped geography: municipal boundaries, 地区 outlines, 町字 areas
   * and names. A notice on the map says which. Returns {builtin: bool, onBuiltin(fn)}.
   */
  function baseLayer(map, config, options) {
    var opts = options || {};
    var state = {builtin: false, listeners: []};
    var tiles = null;
    var loadedTiles = 0;
    var failedTiles = 0;
    var timer = null;

    state.onBuiltin = function (fn) {
      if (state.builtin) { fn(); } else { state.listeners.push(fn); }
    };

    function startBuiltin(reason) {
      if (state.builtin) { return; }
      state.builtin = true;
      window.clearTimeout(timer);
      if (tiles) { map.removeLayer(tiles); tiles = null; }
      drawBuiltin(map, config, reason, opts);
      state.listeners.forEach(function (fn) { fn(); });
    }

    if (!config.tileUrl) {
      startBuiltin("off");
      return state;
    }
    tiles = tileLayer(config);
    tiles.on("tileload", function () { loadedTiles += 1; window.clearTimeout(timer); });
    tiles.on("tileerror", function () {
      failedTiles += 1;
      if (!loadedTiles || failedTiles >= 4 && failedTiles > loadedTiles) { startBuiltin("failed"); }
    });
    tiles.addTo(map);
    // Requests that hang (a closed network dropping packets) count as failed after a few seconds.
    timer = window.setTimeout(function () { if (!loadedTiles) { startBuiltin("failed"); } }, config.tileTimeoutMs || 6000);
    return state;
  }

  var LABEL_ZOOM = {municipality: [0, 12], chiku: [12, 13], town: [14, 20]};

  function drawBuiltin(map, config, reason, opts) {
    var L = window.L;
    var container = map.getContainer();
    container.classList.add("map--builtin");
    if (window.performance && performance.mark) { performance.mark("resdb-basemap-start"); }
    if (!map.getPane("basemap")) {
      map.createPane("basemap").style.zIndex = 250;
      map.createPane("basemapLabels").style.zIndex = 350;
      map.getPane("basemapLabels").style.pointerEvents = "none";
    }
    var notice = L.control({position: opts.noticePosition || "bottomleft"});
    notice.onAdd = function () {
      var text = reason === "off"
        ? "簡易地図を表示しています（市町村の境界・地区・町字）。この環境では背景地図の配信を使わない設定です。"
        : "背景地図を読み込めないため、簡易地図（市町村の境界・地区・町字）を表示しています。";
      var box = el("div", {className: "map-notice", role: "status"}, [text]);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    notice.addTo(map);
    if (!config.basemapUrl) { return; }

    var fetched = {};
    var labels = L.layerGroup().addTo(map);
    var labelItems = [];

    function styleFor(feature) {
      var level = feature.properties.level;
      if (level === "municipality") { return {pane: "basemap", color: "#3d3d3d", weight: 2.5, fillColor: "#fbfaf3", fillOpacity: 1}; }
      if (level === "chiku") { return {pane: "basemap", color: "#6b7f3a", weight: 1.6, dashArray: "6 4", fill: false}; }
      return {pane: "basemap", color: "#a9a69b", weight: 0.8, fill: false};
    }

    function refreshLabels() {
      var zoom = map.getZoom();
      var view = map.getBounds().pad(0.2);
      labels.clearLayers();
      labelItems.forEach(function (item) {
        var range = LABEL_ZOOM[item.level] || [99, 99];
        if (zoom < range[0] || zoom > range[1] || !view.contains(item.latlng)) { return; }
        labels.addLayer(L.marker(item.latlng, {
          pane: "basemapLabels", interactive: false, keyboard: false,
          icon: L.divIcon({className: "basemap-label basemap-label--" + item.level, html: el("span", {text: item.name}), iconSize: null})
        }));
      });
    }

    function draw(body) {
      L.geoJSON(body, {
        style: styleFor,
        interactive: false,
        filter: function (feature) { return !!feature.geometry; }
      }).addTo(map);
      (body.features || []).forEach(function (feature) {
        var p = feature.properties;
        if (p.label) { labelItems.push({level: p.level, name: p.name, latlng: L.latLng(p.label[1], p.label[0])}); }
      });
      if (body.attribution && map.attributionControl) { map.attributionControl.addAttribution(body.attribution); }
      refreshLabels();
      if (window.performance && performance.mark && !fetched.__painted) {
        fetched.__painted = true;
        performance.mark("resdb-basemap-drawn");
      }
      container.setAttribute("data-basemap", "drawn");
    }

    function load(code) {
      if (fetched[code]) { return; }
      fetched[code] = true;
      fetch(config.basemapUrl.replace("__CODE__", encodeURIComponent(code)), {headers: {Accept: "application/geo+json"}})
        .then(function (response) { if (!response.ok) { throw new Error(String(response.status)); } return response.json(); })
        .then(draw)
        .catch(function () { fetched[code] = false; });
    }

    function loadVisible() {
      var b = map.getBounds().pad(0.3);
      var view = [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()];
      (config.basemapAreas || []).forEach(function (area) {
        if (intersects(area.bbox, view)) { load(area.code); }
      });
    }

    if (config.basemapFocus) { load(config.basemapFocus); }
    map.whenReady(loadVisible);
    map.on("moveend", function () { loadVisible(); refreshLabels(); });
  }

  /** Popups for keyboard users: an opened popup takes focus (its first link); Esc closes it and focus goes back. */
  function keyboardPopups(map) {
    var back = null;
    map.on("popupopen", function (event) {
      var node = event.popup.getElement();
      if (!node) { return; }
      var active = document.activeElement;
      back = active && active !== document.body && !node.contains(active) ? active : back;
      var link = node.querySelector(".leaflet-popup-content a");
      if (link) { window.setTimeout(function () { link.focus({preventScroll: true}); }, 0); }
      node.addEventListener("keydown", function (keyEvent) {
        if (keyEvent.key === "Escape" || keyEvent.key === "Esc") { keyEvent.preventDefault(); map.closePopup(); }
      });
    });
    map.on("popupclose", function () {
      var target = back;
      back = null;
      if (target && document.contains(target)) { target.focus({preventScroll: true}); }
    });
  }

  window.resdb = {readConfig: readConfig, el: el, sampleBadge: sampleBadge, tileLayer: tileLayer, baseLayer: baseLayer,
                  keyboardPopups: keyboardPopups};
}());
