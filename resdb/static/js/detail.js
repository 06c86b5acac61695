/* The small map on a listing's page (the text location above it stays, with or without JavaScript). */
(function () {
  "use strict";

  const R = window.resdb;
  const L = window.L;
  const config = R && R.readConfig("map-config");
  const node = document.getElementById("detail-map");
  if (!config || !node || !L || config.lat === null || config.lon === null) { return; }

  node.replaceChildren();
  node.classList.add("detail-map--live");
  node.setAttribute("role", "region");
  node.setAttribute("aria-label", "地図: " + config.name + " の位置");
  const point = [config.lat, config.lon];
  const map = L.map(node, {scrollWheelZoom: false, zoomControl: false}).setView(point, 16);
  L.control.zoom({zoomInTitle: "拡大", zoomOutTitle: "縮小"}).addTo(map);
  map.attributionControl.setPrefix(false);
  R.baseLayer(map, config);
  L.marker(point, {
    icon: L.divIcon({className: "pin pin--detail", iconSize: [24, 24]}),
    title: config.name,
    keyboard: false,
    interactive: false
  }).addTo(map);
}());
