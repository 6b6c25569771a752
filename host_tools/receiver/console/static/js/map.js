// The track on a map: Leaflet over the configured tile server, or (no tile server,
// or Leaflet missing) a plain scaled plot in SVG with a lat/lon grid, accuracy
// circles and a scale bar, which needs nothing from the internet.
const SVG = "http://www.w3.org/2000/svg";
const M_PER_DEG = 111320;
const MAX_CIRCLE_M = 2000;      // accuracy circles are drawn at most this big (65535 = unknown)

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

function nice(x) {          // 1, 2 or 5 times a power of ten, not above x
  const p = Math.pow(10, Math.floor(Math.log10(x)));
  return [5, 2, 1].map((m) => m * p).find((v) => v <= x) || p;
}

function fmtMetres(m) { return m >= 1000 ? `${m / 1000} km` : `${m} m`; }

export function drawTrack(container, track, mapConfig) {
  container.replaceChildren();
  container.dataset.points = String(track.length);
  if (!track.length) {
    container.dataset.mode = "empty";
    container.append(Object.assign(document.createElement("p"), { className: "empty", textContent: "no position received" }));
    return;
  }
  if (mapConfig && mapConfig.tile_url && window.L) return leaflet(container, track, mapConfig);
  return plot(container, track);
}

function leaflet(container, track, cfg) {
  container.dataset.mode = "leaflet";
  const L = window.L;
  const map = L.map(container, { attributionControl: true });
  L.tileLayer(cfg.tile_url, { maxZoom: 19, attribution: cfg.attribution || "" }).addTo(map);
  const latlngs = track.map((p) => [p.lat, p.lon]);
  L.polyline(latlngs, { color: "#1f5fbf", weight: 3, className: "track-line" }).addTo(map);
  const circles = track.map((p) => L.circle([p.lat, p.lon], { radius: Math.min(p.accuracy_m, MAX_CIRCLE_M), weight: 1,
                                                             fillOpacity: 0.08, className: "acc-circle" }));
  const last = track[track.length - 1];
  L.circleMarker([last.lat, last.lon], { radius: 7, color: "#fff", fillColor: "#c62828", fillOpacity: 1,
                                         className: "latest-marker" })
    .bindTooltip(`${last.lat.toFixed(7)}, ${last.lon.toFixed(7)} ±${last.accuracy_m} m`).addTo(map);
  L.control.scale({ metric: true, imperial: false }).addTo(map);
  // the view: the track and the latest fix's accuracy circle, without animation
  map.setView([last.lat, last.lon], 17, { animate: false });
  for (const c of circles) c.addTo(map);
  const bounds = L.latLngBounds(latlngs).extend(circles[circles.length - 1].getBounds());
  map.fitBounds(bounds.pad(0.15), { maxZoom: 19, animate: false });
  return map;
}

function plot(container, track) {
  container.dataset.mode = "plot";
  const W = 600, H = 420, PAD = 28;
  const lat0 = track.reduce((s, p) => s + p.lat, 0) / track.length;
  const lon0 = track.reduce((s, p) => s + p.lon, 0) / track.length;
  const mx = M_PER_DEG * Math.cos((lat0 * Math.PI) / 180), my = M_PER_DEG;
  const pts = track.map((p) => ({ ...p, x: (p.lon - lon0) * mx, y: (p.lat - lat0) * my,
                                  r: Math.min(p.accuracy_m, MAX_CIRCLE_M) }));
  const last = pts[pts.length - 1];
  let minX = Math.min(...pts.map((p) => p.x)), maxX = Math.max(...pts.map((p) => p.x));
  let minY = Math.min(...pts.map((p) => p.y)), maxY = Math.max(...pts.map((p) => p.y));
  minX = Math.min(minX, last.x - last.r); maxX = Math.max(maxX, last.x + last.r);
  minY = Math.min(minY, last.y - last.r); maxY = Math.max(maxY, last.y + last.r);
  const span = Math.max(maxX - minX, maxY - minY, 50);
  const scale = Math.min((W - 2 * PAD) / Math.max(maxX - minX, span * 0.5), (H - 2 * PAD) / Math.max(maxY - minY, span * 0.5));
  const cx = (minX + maxX) / 2, cy = (minY + maxY) / 2;
  const X = (x) => W / 2 + (x - cx) * scale, Y = (y) => H / 2 - (y - cy) * scale;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "track plot", class: "plot" });
  // lat/lon grid with labels: the coordinates of the plot
  const degW = (W / scale) / mx, degH = (H / scale) / my;
  const step = nice(Math.max(degW, degH) / 4);
  const lonLeft = lon0 + (cx - (W / 2) / scale) / mx, latTop = lat0 + (cy + (H / 2) / scale) / my;
  const decimals = Math.max(0, -Math.floor(Math.log10(step)));
  for (let lon = Math.ceil(lonLeft / step) * step; lon < lonLeft + degW; lon += step) {
    const x = X((lon - lon0) * mx);
    svg.append(el("line", { x1: x, y1: 0, x2: x, y2: H, class: "grid-line" }));
    svg.append(el("text", { x: x + 2, y: H - 4 }, lon.toFixed(decimals)));
  }
  for (let lat = Math.floor(latTop / step) * step; lat > latTop - degH; lat -= step) {
    const y = Y((lat - lat0) * my);
    svg.append(el("line", { x1: 0, y1: y, x2: W, y2: y, class: "grid-line" }));
    svg.append(el("text", { x: 2, y: y - 2 }, lat.toFixed(decimals)));
  }
  for (const p of pts) svg.append(el("circle", { cx: X(p.x), cy: Y(p.y), r: Math.max(p.r * scale, 1), class: "acc" }));
  svg.append(el("polyline", { points: pts.map((p) => `${X(p.x).toFixed(1)},${Y(p.y).toFixed(1)}`).join(" "), class: "track" }));
  for (const p of pts.slice(0, -1)) {
    const c = el("circle", { cx: X(p.x), cy: Y(p.y), r: 3, class: "pt" });
    c.append(el("title", {}, `seq ${p.seq}: ${p.lat.toFixed(7)}, ${p.lon.toFixed(7)} ±${p.accuracy_m} m`));
    svg.append(c);
  }
  const latest = el("circle", { cx: X(last.x), cy: Y(last.y), r: 7, class: "latest" });
  latest.append(el("title", {}, `latest (seq ${last.seq})`));
  svg.append(latest);
  // scale bar: a round length near a quarter of the width
  const metres = nice((W / 4) / scale), len = metres * scale;
  svg.append(el("line", { x1: W - PAD - len, y1: H - 22, x2: W - PAD, y2: H - 22, class: "scale" }));
  svg.append(el("line", { x1: W - PAD - len, y1: H - 27, x2: W - PAD - len, y2: H - 17, class: "scale" }));
  svg.append(el("line", { x1: W - PAD, y1: H - 27, x2: W - PAD, y2: H - 17, class: "scale" }));
  svg.append(el("text", { x: W - PAD - len / 2, y: H - 30, "text-anchor": "middle", class: "scale-label" }, fmtMetres(metres)));
  svg.append(el("text", { x: W - PAD, y: 16, "text-anchor": "end", class: "latest-label" },
                `latest ${last.lat.toFixed(7)}, ${last.lon.toFixed(7)} ±${last.accuracy_m} m`));
  container.append(svg);
  return svg;
}
