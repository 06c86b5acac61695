/* The public map: counts per grid cell from the server for wide views, markers (clustered in the browser) at
   street zoom, filters, the list beside the map, わたしの地域. */
(function () {
  "use strict";

  const R = window.resdb;
  const L = window.L;
  const config = R && R.readConfig("map-config");
  const mapNode = document.getElementById("map");
  if (!config || !mapNode || !L || !L.markerClusterGroup) { return; }

  const form = document.getElementById("search-form");
  const listNode = document.getElementById("visible-list");
  const statusNode = document.getElementById("list-status");
  const listLink = document.getElementById("list-link");
  const el = R.el;
  const KIND_CLASS = /^[a-z_]+$/;
  const LIST_LIMIT = config.listLimit || 100;
  const LIST_STEP = 20;

  // -- the map ------------------------------------------------------------------------------------
  const map = L.map(mapNode, {minZoom: 4, maxZoom: 18, zoomControl: false, keyboard: true});
  L.control.zoom({zoomInTitle: "拡大", zoomOutTitle: "縮小"}).addTo(map);
  L.control.scale({imperial: false}).addTo(map);
  map.attributionControl.setPrefix(false);
  R.baseLayer(map, config);
  if (config.bounds) {
    map.fitBounds(config.bounds, {padding: [10, 10], maxZoom: 15});
  } else {
    map.setView([36.2, 138.0], 5);
  }

  // -- phones: the list first, the map behind a toggle ----------------------------------------------
  const layout = document.querySelector(".map-layout");
  const toggle = document.getElementById("map-toggle");
  const narrow = window.matchMedia ? window.matchMedia("(max-width: 59.99rem)") : null;
  let mapOpen = false;

  function showMap(open) {
    if (!layout || !toggle || !narrow || !narrow.matches) { return; }
    mapOpen = open;
    layout.classList.toggle("map-layout--map-open", open);
    toggle.setAttribute("aria-expanded", open ? "true" : "false");
    toggle.textContent = open ? "地図を閉じて一覧だけにする" : "地図を表示";
    if (open) { map.invalidateSize(); }
  }

  function applyLayout() {
    const listFirst = !!(layout && toggle && narrow && narrow.matches);
    if (layout) { layout.classList.toggle("map-layout--list-first", listFirst); }
    if (toggle) { toggle.parentNode.hidden = !listFirst; }
    if (listFirst) { showMap(mapOpen); } else if (layout) { layout.classList.remove("map-layout--map-open"); map.invalidateSize(); }
  }

  if (toggle) {
    toggle.addEventListener("click", function () { showMap(!mapOpen); });
  }
  if (narrow) {
    if (narrow.addEventListener) { narrow.addEventListener("change", applyLayout); } else if (narrow.addListener) { narrow.addListener(applyLayout); }
  }
  applyLayout();

  function clusterIcon(cluster) {
    const count = cluster.getChildCount();
    const size = count < 10 ? "small" : (count < 100 ? "medium" : "large");
    const inner = el("div", {}, [el("span", {text: String(count)}), el("span", {className: "visually-hidden", text: "件のまとまり（拡大）"})]);
    return L.divIcon({html: inner, className: "cluster cluster--" + size, iconSize: L.point(40, 40)});
  }

  const cluster = L.markerClusterGroup({
    chunkedLoading: true,
    showCoverageOnHover: false,
    maxClusterRadius: 48,
    iconCreateFunction: clusterIcon
  });
  map.addLayer(cluster);
  const cells = L.layerGroup().addTo(map); // the server's counts per grid cell (wide views)

  // -- keyboard: an opened popup takes focus (its link first); Esc closes it and focus goes back ------
  let returnFocus = null;
  map.on("popupopen", function (event) {
    const node = event.popup.getElement();
    if (!node) { return; }
    const active = document.activeElement;
    if (!returnFocus && active && active !== document.body && !node.contains(active)) { returnFocus = active; }
    const link = node.querySelector(".leaflet-popup-content a");
    if (link) { window.setTimeout(function () { link.focus({preventScroll: true}); }, 0); }
    node.addEventListener("keydown", function (keyEvent) {
      if (keyEvent.key === "Escape" || keyEvent.key === "Esc") {
        keyEvent.preventDefault();
        keyEvent.stopPropagation();
        map.closePopup();
      }
    });
  });
  map.on("popupclose", function () {
    let target = returnFocus;
    returnFocus = null;
    // The list may have been redrawn while the map moved: find the same listing's button again.
    if (target && !document.contains(target) && target.dataset && target.dataset.listingId) {
      target = listNode.querySelector('button[data-listing-id="' + CSS.escape(target.dataset.listingId) + '"]');
    }
    if (target && document.contains(target) && (document.activeElement === document.body || mapNode.contains(document.activeElement))) {
      target.focus({preventScroll: true});
    }
  });

  // -- markers and popups -------------------------------------------------------------------------
  const markers = new Map(); // id -> marker
  let features = []; // last response, in server order
  let pendingChanges = 0; // committed changes the last answer has not seen (a host rebuilding its index)

  function kindClass(kind) {
    return KIND_CLASS.test(kind || "") ? kind : "other";
  }

  function detailUrl(id) {
    return config.detailUrl.replace("__ID__", encodeURIComponent(id));
  }

  /** 「次回 12月3日（水）13:30」・「無料」 as text, or null when neither is known. */
  function whenAndCost(props, className) {
    const parts = [];
    if (props.next) { parts.push(props.next); }
    if (props.cost) { parts.push("費用 " + props.cost); }
    return parts.length ? el("span", {className: className, text: parts.join("・")}) : null;
  }

  function popupContent(props) {
    const when = whenAndCost(props, "popup__when");
    return el("div", {className: "popup"}, [
      el("p", {className: "popup__title"}, [el("a", {href: detailUrl(props.id)}, [props.name])]),
      el("p", {className: "popup__meta"}, [
        el("span", {className: "tag tag--" + kindClass(props.kind), text: props.kind_label}),
        props.is_sample ? " " : null,
        props.is_sample ? R.sampleBadge(config.sampleLabel) : null
      ]),
      when ? el("p", {className: "popup__facts"}, [when]) : null
    ]);
  }

  // Popups stay clear of the zoom control (top left) and the attribution (bottom right).
  const POPUP_OPTIONS = {maxWidth: 280, autoPanPaddingTopLeft: L.point(56, 12), autoPanPaddingBottomRight: L.point(12, 36)};

  function makeMarker(feature) {
    const props = feature.properties;
    const coords = feature.geometry.coordinates;
    const icon = L.divIcon({
      className: "pin pin--" + kindClass(props.kind) + (props.is_sample ? " pin--sample" : ""),
      iconSize: [20, 20]
    });
    const marker = L.marker([coords[1], coords[0]], {
      icon: icon,
      title: props.name + "（" + props.kind_label + (props.is_sample ? "・" + config.sampleLabel : "") + "）",
      keyboard: true,
      riseOnHover: true
    });
    marker.feature = feature;
    marker.bindPopup(function () { return popupContent(props); }, POPUP_OPTIONS);
    return marker;
  }

  function showFeatures(list) {
    features = list.filter(function (f) { return f.geometry && f.geometry.coordinates; });
    const wanted = new Set(features.map(function (f) { return String(f.id); }));
    const gone = [];
    markers.forEach(function (marker, id) {
      if (!wanted.has(id)) { gone.push(marker); markers.delete(id); }
    });
    if (gone.length) { cluster.removeLayers(gone); }
    const added = [];
    features.forEach(function (f) {
      const id = String(f.id);
      if (!markers.has(id)) {
        const marker = makeMarker(f);
        markers.set(id, marker);
        added.push(marker);
      }
    });
    if (added.length) { cluster.addLayers(added); }
  }

  /** 12,345 → "1.2万" inside the bubble (the full number is in its name). */
  function shortCount(count) {
    return count >= 10000 ? (Math.floor(count / 1000) / 10) + "万" : String(count);
  }

  function cellMarker(f) {
    const p = f.properties;
    const c = f.geometry.coordinates;
    const size = p.count < 10 ? "small" : (p.count < 100 ? "medium" : "large");
    const name = p.count + " 件のまとまり" + (p.samples ? "（うち" + config.sampleLabel + " " + p.samples + " 件）" : "") + "・クリックで拡大";
    const inner = el("div", {}, [el("span", {text: shortCount(p.count)}), el("span", {className: "visually-hidden", text: "件のまとまり（拡大）"})]);
    const marker = L.marker([c[1], c[0]], {
      icon: L.divIcon({html: inner, className: "cluster cluster--" + size + " cluster--cell", iconSize: L.point(40, 40)}),
      title: name,
      alt: name,
      keyboard: true,
      riseOnHover: true
    });
    marker.on("click", function () {
      const b = p.bbox;
      const zoom = map.getZoom();
      map.fitBounds([[b[1], b[0]], [b[3], b[2]]], {maxZoom: Math.max(zoom + 1, config.streetZoom || 15)});
    });
    return marker;
  }

  function showCells(list) {
    cells.clearLayers();
    list.forEach(function (f) { cells.addLayer(cellMarker(f)); });
  }

  // -- the list beside the map --------------------------------------------------------------------
  function showInMap(marker) {
    cluster.zoomToShowLayer(marker, function () { marker.openPopup(); });
  }

  let visibleFeatures = [];
  let visibleTotal = 0;
  let shown = 0;
  let pendingPopup = null; // a listing to open once the markers at street zoom have come

  function listItem(f) {
    const props = f.properties;
    const button = el("button", {type: "button", className: "link-button", text: "地図で表示"});
    button.setAttribute("aria-label", props.name + " を地図で表示");
    button.setAttribute("data-listing-id", String(f.id));
    button.addEventListener("click", function () {
      const marker = markers.get(String(f.id));
      returnFocus = button;
      showMap(true);
      if (marker) {
        showInMap(marker);
      } else if (f.geometry && f.geometry.coordinates) { // inside a cell: zoom to the street, then open it
        pendingPopup = String(f.id);
        const c = f.geometry.coordinates;
        map.setView([c[1], c[0]], Math.max(map.getZoom(), config.streetZoom || 15));
      }
    });
    const when = whenAndCost(props, "visible-list__when");
    return el("li", {className: "visible-list__item"}, [
      el("a", {href: detailUrl(props.id), className: "visible-list__name"}, [props.name]),
      when,
      el("span", {className: "visible-list__meta"}, [
        el("span", {className: "tag tag--" + kindClass(props.kind), text: props.kind_label}),
        props.is_sample ? " " : null,
        props.is_sample ? R.sampleBadge(config.sampleLabel) : null,
        " ",
        button
      ])
    ]);
  }

  function showMore(count) {
    const next = visibleFeatures.slice(shown, Math.min(shown + count, LIST_LIMIT));
    next.forEach(function (f) { listNode.appendChild(listItem(f)); });
    shown += next.length;
    moreButton.hidden = shown >= Math.min(visibleFeatures.length, LIST_LIMIT);
    return next.length;
  }

  const moreButton = el("button", {type: "button", className: "button button--secondary", text: "さらに表示"});
  moreButton.hidden = true;
  moreButton.addEventListener("click", function () {
    const first = shown;
    if (showMore(LIST_STEP) && listNode.children[first]) {
      listNode.children[first].querySelector("a").focus();
    }
  });
  listNode.insertAdjacentElement("afterend", el("p", {className: "list-pane__more-button"}, [moreButton]));

  function renderList(listed) {
    const bounds = map.getBounds();
    if (listed) { // clustered: the server's first listings in the visible area, and their number
      visibleFeatures = listed.features.filter(function (f) { return f.geometry && f.geometry.coordinates; });
      visibleTotal = listed.total;
      pendingChanges = listed.pending_changes || 0;
    } else {
      visibleFeatures = features.filter(function (f) {
        const c = f.geometry.coordinates;
        return bounds.contains([c[1], c[0]]);
      });
      visibleTotal = visibleFeatures.length;
    }
    // Keep keyboard focus on the same listing's button when the list is redrawn under it.
    const active = document.activeElement;
    const focusedId = active && listNode.contains(active) && active.getAttribute("data-listing-id");
    listNode.replaceChildren();
    shown = 0;
    showMore(LIST_STEP);
    if (focusedId) {
      const again = listNode.querySelector('button[data-listing-id="' + CSS.escape(focusedId) + '"]');
      if (again) { again.focus({preventScroll: true}); }
    }
    let text = "地図の範囲に " + visibleTotal + " 件あります。";
    if (visibleTotal > LIST_LIMIT) {
      text += "一覧に出せるのは " + LIST_LIMIT + " 件までです。地図を拡大するか、条件で絞り込んでください。";
    }
    if (pendingChanges) {
      text += "検索の索引を更新しています。最近の変更 " + pendingChanges.toLocaleString("ja-JP") + " 件がまだこの結果に反映されていません。";
    }
    statusNode.replaceChildren(document.createTextNode(text));
    if (!visibleTotal && hasFilters()) {
      const widen = el("button", {type: "button", className: "button button--secondary", text: "範囲を広げて探す"});
      widen.addEventListener("click", function () { load({fit: true}); });
      statusNode.appendChild(document.createTextNode(" "));
      statusNode.appendChild(widen);
    }
  }

  // -- loading ------------------------------------------------------------------------------------
  let controller = null;
  let loaded = null; // {filters, bounds, clustered, zoom}
  let listController = null;

  /** Clustered views: the list beside the map asks for the first listings in the visible area. */
  function loadList(filters) {
    const params = new URLSearchParams(filters);
    params.set("bbox", bboxOf(map.getBounds()));
    params.set("limit", String(LIST_LIMIT));
    if (listController) { listController.abort(); }
    listController = new AbortController();
    fetch(config.geojsonUrl + "?" + params.toString(), {signal: listController.signal, headers: {Accept: "application/geo+json"}})
      .then(function (response) {
        if (!response.ok) { throw new Error("一覧を読み込めませんでした（" + response.status + "）"); }
        return response.json();
      })
      .then(function (body) { renderList(body); })
      .catch(function (error) {
        if (error.name === "AbortError") { return; }
        showError(error.message || "一覧を読み込めませんでした");
      });
  }

  function showList(filters) {
    if (loaded && loaded.clustered) { loadList(filters); } else { renderList(); }
  }

  function filterParams() {
    const params = new URLSearchParams();
    new FormData(form).forEach(function (value, key) {
      if (value !== "" && key !== "page" && key !== "bbox") { params.append(key, value); }
    });
    return params;
  }

  function hasFilters() {
    return filterParams().toString() !== "";
  }

  function bboxOf(bounds) {
    const clamp = function (v, lo, hi) { return Math.min(hi, Math.max(lo, v)); };
    return [
      clamp(bounds.getWest(), -180, 180), clamp(bounds.getSouth(), -90, 90),
      clamp(bounds.getEast(), -180, 180), clamp(bounds.getNorth(), -90, 90)
    ].map(function (v) { return v.toFixed(5); }).join(",");
  }

  function updateLinks(filters) {
    const visible = new URLSearchParams(filters);
    visible.set("bbox", bboxOf(map.getBounds()));
    listLink.href = config.searchUrl + "?" + visible.toString();
    if (window.history && window.history.replaceState) {
      window.history.replaceState(null, "", "?" + visible.toString());
    }
  }

  function showError(message) {
    statusNode.replaceChildren(el("span", {className: "error-text", text: message}));
  }

  let retryTimer = null;

  function load(options) {
    clearTimeout(retryTimer);
    const fit = options && options.fit;
    const filters = filterParams().toString();
    const params = new URLSearchParams(filters);
    const bounds = map.getBounds().pad(0.5);
    const zoom = map.getZoom();
    if (!fit) { params.set("bbox", bboxOf(bounds)); }
    params.set("zoom", String(zoom));
    if (controller) { controller.abort(); }
    controller = new AbortController();
    statusNode.textContent = "読み込み中…";
    mapNode.setAttribute("aria-busy", "true");
    fetch(config.geojsonUrl + "?" + params.toString(), {signal: controller.signal, headers: {Accept: "application/geo+json"}})
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) {
            const message = body && body.error && body.error.message;
            const error = new Error(message || "読み込めませんでした（" + response.status + "）");
            if (response.status === 503) {  // 準備中: ask again after the server's Retry-After
              error.retryAfter = Math.min(60, Math.max(1, parseInt(response.headers.get("Retry-After"), 10) || 5));
            }
            throw error;
          }
          return body;
        });
      })
      .then(function (body) {
        mapNode.removeAttribute("aria-busy");
        pendingChanges = body.pending_changes || 0;
        const all = (body.features || []).filter(function (f) { return f.geometry && f.geometry.coordinates; });
        const cellFeatures = all.filter(function (f) { return f.properties && f.properties.cluster; });
        loaded = {filters: filters, bounds: fit ? null : bounds, clustered: !!body.clustered, zoom: zoom};
        showCells(cellFeatures);
        showFeatures(all.filter(function (f) { return !(f.properties && f.properties.cluster); }));
        if (fit && all.length) {
          const box = L.latLngBounds(all.map(function (f) { return [f.geometry.coordinates[1], f.geometry.coordinates[0]]; }));
          map.fitBounds(box, {padding: [20, 20], maxZoom: 15});
        }
        if (pendingPopup && markers.has(pendingPopup)) {
          const marker = markers.get(pendingPopup);
          pendingPopup = null;
          showInMap(marker);
        }
        showList(filters);
        updateLinks(filters);
      })
      .catch(function (error) {
        if (error.name === "AbortError") { return; }
        mapNode.removeAttribute("aria-busy");
        if (error.retryAfter) {
          showError(error.message + "（" + error.retryAfter + " 秒後にもう一度読み込みます）");
          clearTimeout(retryTimer);
          retryTimer = setTimeout(function () { load(options); }, error.retryAfter * 1000);
          return;
        }
        showError(error.message || "読み込めませんでした");
      });
  }

  let timer = null;
  function scheduleLoad(delay) {
    window.clearTimeout(timer);
    timer = window.setTimeout(function () {
      const filters = filterParams().toString();
      // Points stay right when zooming in; cells only at the zoom they were cut for.
      const covered = loaded && loaded.filters === filters &&
        (loaded.bounds === null || loaded.bounds.contains(map.getBounds())) &&
        (!loaded.clustered || loaded.zoom === map.getZoom());
      if (covered) {
        showList(filters);
        updateLinks(filters);
      } else {
        load();
      }
    }, delay);
  }

  map.on("moveend", function () { scheduleLoad(250); });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    window.clearTimeout(timer);
    load();
  });
  form.addEventListener("change", function (event) {
    if (event.target && event.target.name === "q") { return; }
    window.clearTimeout(timer);
    if (event.target && event.target.name === "municipality") {
      load({fit: true});
    } else {
      timer = window.setTimeout(load, 150);
    }
  });
  load();

  // -- わたしの地域 --------------------------------------------------------------------------------
  const areaForm = document.getElementById("area-form");
  const areaInput = document.getElementById("area-address");
  const areaResults = document.getElementById("area-results");
  const locationButton = document.getElementById("use-location");
  let homeMarker = null;

  function renderArea(data) {
    const town = data.town ? (data.town.municipality || "") + data.town.name : "この場所";
    const heading = el("h3", {text: town + "を担当する窓口"});
    let body;
    if (data.items && data.items.length) {
      body = el("ul", {className: "area-list"}, data.items.map(function (item) {
        const phone = item.phone ? el("span", {className: "area-list__phone"}, ["電話: ", item.phone]) : null;
        return el("li", {}, [
          el("a", {href: detailUrl(item.id)}, [item.name]), " ",
          el("span", {className: "tag tag--" + kindClass(item.kind), text: item.kind === "center" ? "相談窓口" : "担当"}),
          item.is_sample ? " " : null,
          item.is_sample ? R.sampleBadge(config.sampleLabel) : null,
          phone ? el("br") : null, phone
        ]);
      }));
    } else {
      body = el("p", {text: "この場所を担当地区に含む窓口は登録されていません。市町村の福祉の総合窓口にお問い合わせください。"});
    }
    const more = el("p", {}, [el("a", {href: config.areasUrl + "?" + new URLSearchParams(lastLookup).toString()},
      ["困りごとの種類ごとに窓口を見る（まずはここ・高齢・障がい・子育て・暮らし・ひきこもり）"])]);
    areaResults.replaceChildren(heading, body, more);
    if (data.point) {
      const point = [data.point.lat, data.point.lon];
      if (homeMarker) { map.removeLayer(homeMarker); }
      homeMarker = L.circleMarker(point, {radius: 9, color: "#1a1a1a", weight: 3, fillColor: "#ffdd00", fillOpacity: 0.9, interactive: false}).addTo(map);
      map.setView(point, Math.max(map.getZoom(), 14));
    }
  }

  let lastLookup = {};
  function lookup(params) {
    lastLookup = params;
    areaResults.replaceChildren(el("p", {text: "調べています…"}));
    fetch(config.lookupUrl + "?" + new URLSearchParams(params).toString(), {headers: {Accept: "application/json"}})
      .then(function (response) {
        return response.json().then(function (body) {
          if (!response.ok) { throw new Error((body && body.error && body.error.message) || "調べられませんでした"); }
          return body;
        });
      })
      .then(renderArea)
      .catch(function (error) {
        areaResults.replaceChildren(el("p", {className: "error-text", text: error.message}));
      });
  }

  if (areaForm && areaInput && areaResults) {
    areaForm.addEventListener("submit", function (event) {
      event.preventDefault();
      const address = areaInput.value.trim();
      if (!address) {
        areaResults.replaceChildren(el("p", {className: "error-text", text: "住所を入力してください"}));
        areaInput.focus();
        return;
      }
      lookup({address: address});
    });
    if (locationButton && "geolocation" in navigator) {
      locationButton.hidden = false;
      locationButton.addEventListener("click", function () {
        areaResults.replaceChildren(el("p", {text: "現在地を確認しています…"}));
        navigator.geolocation.getCurrentPosition(function (position) {
          lookup({lat: position.coords.latitude.toFixed(6), lon: position.coords.longitude.toFixed(6)});
        }, function () {
          areaResults.replaceChildren(el("p", {className: "error-text", text: "現在地を取得できませんでした。住所を入力してお試しください。"}));
        }, {timeout: 10000, maximumAge: 60000});
      });
    }
  }
}());
