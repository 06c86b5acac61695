/* Editor form: add/remove schedule rows, and a small Leaflet map that sets the lat/lon inputs.
   The form works without this script (blank schedule rows, typed coordinates). */
(function () {
  "use strict";

  var readConfig = window.resdb.readConfig;

  function renumber(row, index) {
    row.querySelectorAll("[name], [id], label[for]").forEach(function (node) {
      ["name", "id", "for"].forEach(function (attr) {
        var value = node.getAttribute(attr);
        if (value) { node.setAttribute(attr, value.replace(/schedule-\d+-/, "schedule-" + index + "-")); }
      });
    });
  }

  function setupSchedule() {
    var container = document.getElementById("schedule-rows");
    var add = document.getElementById("schedule-add");
    if (!container || !add) { return; }
    var next = parseInt(container.getAttribute("data-next-index"), 10) || container.children.length;

    function wire(row) {
      var remove = row.querySelector("[data-remove-row]");
      if (!remove) { return; }
      remove.hidden = false;
      remove.addEventListener("click", function () {
        var rows = container.querySelectorAll("[data-schedule-row]");
        var focusTarget = add;
        if (rows.length <= 1) {
          row.querySelectorAll("select, input[type=time]").forEach(function (f) { f.value = ""; });
          row.querySelectorAll("input[type=checkbox]").forEach(function (f) { f.checked = false; });
          focusTarget = row.querySelector("select") || add;
        } else {
          row.parentNode.removeChild(row);
        }
        focusTarget.focus();
      });
    }

    container.querySelectorAll("[data-schedule-row]").forEach(wire);
    add.hidden = false;
    add.addEventListener("click", function () {
      var rows = container.querySelectorAll("[data-schedule-row]");
      var template = rows[rows.length - 1];
      var row = template.cloneNode(true);
      renumber(row, next);
      next += 1;
      row.querySelectorAll("select, input[type=time]").forEach(function (f) { f.value = ""; });
      row.querySelectorAll("input[type=checkbox]").forEach(function (f) { f.checked = false; });
      var legend = row.querySelector("legend.visually-hidden");
      if (legend) { legend.textContent = "日程 " + (rows.length + 1); }
      container.appendChild(row);
      wire(row);
      var first = row.querySelector("select");
      if (first) { first.focus(); }
    });
  }

  function setupMap() {
    var node = document.getElementById("edit-map");
    var config = readConfig("editor-map-config");
    var latInput = document.getElementById("f-lat");
    var lonInput = document.getElementById("f-lon");
    if (!node || !config || !window.L || !latInput || !lonInput) {
      if (node) { node.hidden = true; }
      return;
    }
    var L = window.L;
    var lat = parseFloat(latInput.value);
    var lon = parseFloat(lonInput.value);
    var has = isFinite(lat) && isFinite(lon);
    var map = L.map(node, {scrollWheelZoom: false}).setView(has ? [lat, lon] : [36.72, 137.1], has ? 16 : 10);
    if (window.resdb && window.resdb.baseLayer) { window.resdb.baseLayer(map, config); }
    else if (config.tileUrl) { L.tileLayer(config.tileUrl, {attribution: config.tileAttribution, maxZoom: 18, minZoom: 5}).addTo(map); }
    var marker = null;

    function place(a, b, pan) {
      if (marker) { marker.setLatLng([a, b]); }
      else {
        marker = L.marker([a, b], {draggable: true, keyboard: true, title: "掲載の位置", alt: "掲載の位置"}).addTo(map);
        marker.on("dragend", function () {
          var p = marker.getLatLng();
          latInput.value = p.lat.toFixed(6);
          lonInput.value = p.lng.toFixed(6);
        });
      }
      if (pan) { map.panTo([a, b]); }
    }
    if (has) { place(lat, lon, false); }
    map.on("click", function (event) {
      latInput.value = event.latlng.lat.toFixed(6);
      lonInput.value = event.latlng.lng.toFixed(6);
      place(event.latlng.lat, event.latlng.lng, false);
    });
    function fromInputs() {
      var a = parseFloat(latInput.value);
      var b = parseFloat(lonInput.value);
      if (isFinite(a) && isFinite(b) && a > 20 && a < 46 && b > 122 && b < 154) { place(a, b, true); }
    }
    latInput.addEventListener("change", fromInputs);
    lonInput.addEventListener("change", fromInputs);
  }

  function focusProblems() {
    var box = document.getElementById("form-problems");
    if (box) { box.focus(); }
  }

  function start() {
    setupSchedule();
    setupMap();
    focusProblems();
  }

  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); }
  else { start(); }
})();
