"""The live page: one self-contained HTML document (inline CSS and script, nothing loaded from elsewhere).

It shows /stream.mjpg in an <img>, and from /events (EventSource) the frame rate, the stage times and the
newest frame's results; the token of its own URL (``?token=``) is passed on to both. Fluid width, so it reads
on a phone. Text from results is set with textContent, never parsed as HTML.
"""

PAGE_HTML = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>edge live</title>
<style>
  body { margin: 0; background: #15171a; color: #e8e8e8; font: 15px/1.4 system-ui, sans-serif; }
  header { padding: 8px 14px; background: #23262b; display: flex; gap: 14px; align-items: baseline;
           flex-wrap: wrap; }
  header b { font-size: 17px; }
  #state { color: #9aa0a6; }
  main { display: flex; flex-wrap: wrap; gap: 14px; padding: 14px; }
  #video { flex: 3 1 480px; min-width: 0; }
  #video img { width: 100%; height: auto; display: block; background: #000; border-radius: 4px; }
  aside { flex: 1 1 240px; min-width: 0; }
  h2 { font-size: 13px; text-transform: uppercase; letter-spacing: .06em; color: #9aa0a6; margin: 0 0 6px; }
  table { border-collapse: collapse; margin-bottom: 16px; width: 100%; }
  td { padding: 2px 6px 2px 0; font-variant-numeric: tabular-nums; }
  td.ms { text-align: right; }
  ul { list-style: none; padding: 0; margin: 0; }
  li { padding: 4px 6px; margin-bottom: 4px; background: #23262b; border-radius: 4px;
       font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
  li .label { font-weight: 600; color: #7ee787; }
  #dropped { color: #f0b35a; }
</style>
</head>
<body>
<header><b>edge live</b><span id="fps">-- FPS</span><span id="frame">frame --</span>
<span id="state">connecting</span><span id="dropped"></span></header>
<main>
  <div id="video"><img id="stream" alt="live video"></div>
  <aside>
    <h2>Stage times</h2>
    <table id="stages"></table>
    <h2 id="results-title">Results</h2>
    <ul id="results"></ul>
  </aside>
</main>
<script>
(function () {
  "use strict";
  var token = new URLSearchParams(location.search).get("token");
  var suffix = token ? "?token=" + encodeURIComponent(token) : "";
  var img = document.getElementById("stream");
  var history = [], latest = null, pending = false;

  function el(id) { return document.getElementById(id); }
  function connectVideo() { img.src = "stream.mjpg" + suffix + (suffix ? "&" : "?") + "t=" + Date.now(); }
  img.onerror = function () { setTimeout(connectVideo, 2000); };

  function items(result) {
    if (!result) { return []; }
    return result.detections || result.instances || result.classes || [];
  }
  function describe(item) {
    var name = item.label || item.identity || ("class " + item.class_id);
    var score = item.score !== undefined ? item.score : item.fraction;
    var parts = [];
    if (score !== undefined) { parts.push(score.toFixed(2)); }
    if (item.box_xyxy) {
      var b = item.box_xyxy;
      parts.push("at " + Math.round(b[0]) + "," + Math.round(b[1]) + " " + Math.round(b[2] - b[0]) + "\\u00d7" +
                 Math.round(b[3] - b[1]));
    }
    if (item.track_id !== undefined) { parts.push("track " + item.track_id); }
    if (item.rle) { parts.push("mask"); }
    if (item.points_xy) { parts.push(item.points_xy.length + " points"); }
    return [name, parts.join(" ")];
  }
  function render() {  // on the next animation frame, or a timer where frames are not drawn (hidden, headless)
    if (!pending) { return; }
    pending = false;
    var r = latest;
    if (history.length > 1) {
      var a = history[0], z = history[history.length - 1];
      if (z[1] > a[1]) { el("fps").textContent = ((z[0] - a[0]) / (z[1] - a[1])).toFixed(1) + " FPS"; }
    }
    el("frame").textContent = "frame " + r.frame + (r.stream ? " (" + r.stream.name + ")" : "");
    var table = el("stages");
    table.textContent = "";
    var timings = r.timings_ms || {};
    Object.keys(timings).forEach(function (stage) {
      var row = table.insertRow();
      row.insertCell().textContent = stage;
      var ms = row.insertCell();
      ms.className = "ms";
      ms.textContent = (timings[stage] === null ? "--" : timings[stage].toFixed(2)) + " ms";
    });
    var list = el("results");
    list.textContent = "";
    var found = items(r.result);
    el("results-title").textContent = "Results" + (r.result ? " (" + r.result.task + ", " + found.length + ")" : "");
    found.slice(0, 50).forEach(function (item) {
      var text = describe(item), li = document.createElement("li"), label = document.createElement("span");
      label.className = "label";
      label.textContent = text[0];
      li.appendChild(label);
      li.appendChild(document.createTextNode(" " + text[1]));
      list.appendChild(li);
    });
  }
  var events = new EventSource("events" + suffix);
  events.onopen = function () { el("state").textContent = "live"; };
  events.onerror = function () { el("state").textContent = "disconnected, retrying"; };
  events.onmessage = function (message) {
    latest = JSON.parse(message.data);
    history.push([latest.frame, latest.timestamp_s]);
    if (history.length > 30) { history.shift(); }
    if (!pending) {
      pending = true;
      if (history.length === 1) { render(); } else { requestAnimationFrame(render); setTimeout(render, 200); }
    }
  };
  events.addEventListener("dropped", function (message) {
    el("dropped").textContent = message.data + " results skipped (slow connection)";
  });
  connectVideo();  // the MJPEG response never ends, so neither does the page's loading: a live page
})();
</script>
</body>
</html>
"""
