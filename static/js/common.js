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

  window.resdb = {readConfig: readConfig, el: el, sampleBadge: sampleBadge, tileLayer: tileLayer};
}());
