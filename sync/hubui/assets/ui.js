// Live updates for the dashboard (package hubui): the server pushes rows
// and the agent page's live part as HTML it rendered and escaped; this
// script only swaps them in.
(function () {
  "use strict";
  var table = document.getElementById("agents");
  var agent = document.getElementById("agent");
  var url;
  if (agent) {
    url = "/ui/events?agent=" + encodeURIComponent(agent.dataset.agent);
  } else if (table) {
    url = "/ui/events?rows=" + encodeURIComponent(table.dataset.rows || "");
  } else {
    return;
  }
  var dot = document.getElementById("live");
  var es = new EventSource(url);
  es.onopen = function () { if (dot) dot.className = "live on"; };
  es.onerror = function () { if (dot) dot.className = "live"; };
  function swap(el, html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    var n = t.content.firstElementChild;
    if (!n) return;
    el.replaceWith(n);
    n.classList.add("flash");
  }
  es.addEventListener("row", function (e) {
    var d = JSON.parse(e.data);
    var el = document.getElementById("row-" + d.id);
    if (el) swap(el, d.html);
  });
  es.addEventListener("agent", function (e) {
    var d = JSON.parse(e.data);
    var el = document.getElementById("live-agent");
    if (el) swap(el, d.html);
  });
})();
