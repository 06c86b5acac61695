/* Coordinator desk: the proposals map, the gap map, the compare limit and the print button.
   Data comes from <script type="application/json" id="desk-config"> (CSP: no inline scripts). */
(function () {
  "use strict";

  var printButton = document.getElementById("print-button");
  if (printButton) {
    printButton.addEventListener("click", function () { window.print(); });
  }

  var problems = document.getElementById("form-problems");
  if (problems) { problems.focus(); }

  var R = window.resdb;
  var L = window.L;
  var config = R && R.readConfig("desk-config");
  var node = document.getElementById("desk-map");
  if (!config || !node || !L) { return; }
  var el = R.el;

  node.replaceChildren();
  node.classList.add("desk-map--live");
  var map = L.map(node, {scrollWheelZoom: false, zoomControl: false});
  L.control.zoom({zoomInTitle: "拡大", zoomOutTitle: "縮小"}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  map.attributionControl.setPrefix(false);
  R.baseLayer(map, config);
  R.keyboardPopups(map);

  if (config.points) {
    var bounds = [];
    config.points.forEach(function (p) {
      var icon = L.divIcon({className: "desk-pin", html: el("span", {text: String(p.n)}), iconSize: [28, 28]});
      var marker = L.marker([p.lat, p.lon], {icon: icon, title: p.n + ". " + p.name, keyboard: true});
      marker.bindPopup(el("div", {className: "popup"}, [
        el("p", {className: "popup__title"}, [el("a", {href: p.url, target: "_blank", rel: "noopener"}, [p.n + ". " + p.name])]),
        p.travel ? el("p", {text: p.travel}) : null
      ]));
      marker.addTo(map);
      bounds.push([p.lat, p.lon]);
    });
    if (config.home) {
      // The person's home (approximate: the address's 町字 or the given point); not interactive, named for AT.
      var homeIcon = L.divIcon({className: "desk-home", html: el("span", {text: "家"}), iconSize: [30, 30]});
      L.marker([config.home.lat, config.home.lon], {icon: homeIcon, title: "本人の自宅（おおよその位置）",
                                                    alt: "本人の自宅（おおよその位置）", keyboard: false, interactive: false,
                                                    zIndexOffset: -100}).addTo(map);
      bounds.push([config.home.lat, config.home.lon]);
      var homeLegend = L.control({position: "bottomleft"});
      homeLegend.onAdd = function () {
        return el("div", {className: "desk-legend"}, [el("p", {}, [el("span", {className: "desk-home desk-home--swatch", text: "家"}), " 本人の自宅（おおよそ）・番号は一覧の順"])]);
      };
      homeLegend.addTo(map);
    }
    if (bounds.length) { map.fitBounds(bounds, {padding: [30, 30], maxZoom: 15}); } else { map.setView([36.75, 137.1], 12); }
  }

  if (config.districts) {
    var max = config.max || 0;
    var shades = ["#f1f4f8", "#fde0c5", "#f9b27d", "#e8743b", "#b8401a"];
    var layer = L.geoJSON(config.districts, {
      style: function (feature) {
        var unmet = feature.properties.unmet;
        var level = unmet > 0 && max > 0 ? Math.max(1, Math.ceil(unmet / max * 4)) : 0;
        return {color: "#555", weight: 1, dashArray: feature.properties.approximate ? "4 3" : null,
                fillColor: shades[level], fillOpacity: 0.7};
      },
      onEachFeature: function (feature, featureLayer) {
        var props = feature.properties;
        // A text node, never an HTML string: district names come from imported files.
        featureLayer.bindTooltip(el("span", {text: String(props.name) + (props.approximate ? "（近似）" : "") +
          ": 不足 " + Number(props.unmet) + "人 / ニーズ " + Number(props.needs) + "人"}));
      }
    }).addTo(map);
    map.fitBounds(layer.getBounds(), {padding: [10, 10]});
    var legend = L.control({position: "bottomright"});
    legend.onAdd = function () {
      return el("div", {className: "desk-legend"}, [
        el("p", {text: "不足している人数"}),
        el("p", {}, [el("span", {className: "swatch swatch--0"}), " 0"]),
        el("p", {}, [el("span", {className: "swatch swatch--4"}), " 多い（最大 " + max + "人）"]),
        el("p", {text: "点線の境界は近似"})
      ]);
    };
    legend.addTo(map);
  }
}());

/* Compare: at most three picks (the checkboxes stay usable without JavaScript; the server checks too). */
(function () {
  "use strict";
  var form = document.getElementById("result-form");
  if (!form) { return; }
  var status = document.createElement("p");
  status.className = "hint pick-status";
  status.setAttribute("role", "status");
  var toolbar = form.querySelector(".desk-toolbar");
  if (toolbar) { toolbar.appendChild(status); }
  function update() {
    var n = form.querySelectorAll("input[name=pick]:checked").length;
    status.textContent = n ? n + "か所を選んでいます" : "";
  }
  form.addEventListener("change", update);
  update();
}());
