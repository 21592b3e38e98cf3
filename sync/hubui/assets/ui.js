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
  // swap makes el what the server rendered. Only the children that changed
  // are replaced: an unchanged cell (the row's link to its agent) stays the
  // same element, so a click or a selection in it survives an update (rows
  // update with every health snapshot).
  function swap(el, html) {
    var t = document.createElement("template");
    t.innerHTML = html.trim();
    var n = t.content.firstElementChild;
    if (!n) return;
    if (n.tagName !== el.tagName || n.children.length !== el.children.length) {
      el.replaceWith(n);
      flash(n);
      return;
    }
    var i, a;
    for (i = el.attributes.length - 1; i >= 0; i--) {
      a = el.attributes[i];
      if (!n.hasAttribute(a.name)) el.removeAttribute(a.name);
    }
    for (i = 0; i < n.attributes.length; i++) {
      a = n.attributes[i];
      if (el.getAttribute(a.name) !== a.value) el.setAttribute(a.name, a.value);
    }
    var olds = Array.prototype.slice.call(el.children);
    var news = Array.prototype.slice.call(n.children);
    for (i = 0; i < news.length; i++) {
      if (!olds[i].isEqualNode(news[i])) olds[i].replaceWith(news[i]);
    }
    flash(el);
  }
  function flash(el) {
    el.classList.remove("flash");
    void el.offsetWidth; // restarts the animation
    el.classList.add("flash");
  }
  // A live row that no longer matches the page's filters (an agent gone
  // offline on an "online" page, a fault cleared on a "faults" page) is
  // kept where it is, dimmed and marked, until the page is reloaded: rows
  // do not jump under the operator's pointer.
  function markMatch(el) {
    var f = table.dataset, r = el.dataset;
    var ok = (!f.status || f.status === "any" || r.status === f.status) &&
      (!f.fault || r.faults !== "0") &&
      (!f.region || (r.region || "").indexOf(f.region) === 0);
    el.classList.toggle("nomatch", !ok);
    if (ok) el.removeAttribute("title");
    else el.title = "no longer matches the filters; reload to update 已不符合筛选条件，刷新后更新";
  }
  es.addEventListener("row", function (e) {
    var d = JSON.parse(e.data);
    var el = document.getElementById("row-" + d.id);
    if (!el) return;
    swap(el, d.html);
    el = document.getElementById("row-" + d.id); // swap may replace it
    if (el && table) markMatch(el);
  });
  es.addEventListener("agent", function (e) {
    var d = JSON.parse(e.data);
    var el = document.getElementById("live-agent");
    if (el) swap(el, d.html);
  });
})();
