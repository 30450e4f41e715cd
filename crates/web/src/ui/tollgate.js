// tollgate's one script, served from /static/tollgate.js (the Content-Security-Policy allows
// no inline script and nothing from elsewhere). Every page works without it; it adds:
//  - the value under the pointer: any element with a data-tip attribute inside a chart shows
//    that text in a tooltip (#tip) while the pointer or keyboard focus is on it;
//  - the Dashboard's live part (#live[data-refresh]) refreshed in place every data-every
//    seconds, with the X-Tollgate-Refresh header so the refresh does not extend the login
//    session; when the session has ended the refresh stops and says so;
//  - the browser's own time zone as a choice in every time-zone selector (select[name=tz]),
//    which submits its form when changed.
(function () {
  "use strict";

  var tip = null;
  function tipElement() {
    if (!tip) {
      tip = document.createElement("div");
      tip.id = "tip";
      tip.className = "tip";
      tip.setAttribute("role", "tooltip");
      tip.hidden = true;
      document.body.appendChild(tip);
    }
    return tip;
  }
  function tipTarget(el) {
    while (el && el !== document) {
      if (el.getAttribute && el.getAttribute("data-tip") !== null && el.closest("svg.chart")) return el;
      el = el.parentNode;
    }
    return null;
  }
  function show(el, x, y) {
    var t = tipElement();
    t.textContent = el.getAttribute("data-tip");
    t.hidden = false;
    var w = t.offsetWidth, h = t.offsetHeight;
    var left = Math.min(x + 14, window.innerWidth - w - 4);
    var top = y + 16 + h > window.innerHeight ? y - h - 10 : y + 16;
    t.style.left = Math.max(4, left) + "px";
    t.style.top = Math.max(4, top) + "px";
  }
  function hide() {
    if (tip) tip.hidden = true;
  }
  document.addEventListener("mousemove", function (e) {
    var el = tipTarget(e.target);
    if (el) show(el, e.clientX, e.clientY); else hide();
  });
  document.addEventListener("mouseleave", hide);
  document.addEventListener("focusin", function (e) {
    var el = tipTarget(e.target);
    if (!el) return hide();
    var r = el.getBoundingClientRect();
    show(el, r.left + r.width / 2, r.top + r.height / 2);
  });

  function zones() {
    var own;
    try { own = Intl.DateTimeFormat().resolvedOptions().timeZone; } catch (e) { own = null; }
    var selects = document.querySelectorAll("select[name=tz]");
    for (var i = 0; i < selects.length; i++) {
      var s = selects[i];
      if (own && own !== "UTC" && !Array.prototype.some.call(s.options, function (o) { return o.value === own; })) {
        var o = document.createElement("option");
        o.value = own;
        o.textContent = own + " (this browser)";
        s.appendChild(o);
      }
      s.addEventListener("change", function () { if (this.form) this.form.submit(); });
    }
  }

  function live() {
    var box = document.getElementById("live");
    if (!box || !box.getAttribute("data-refresh")) return;
    var url = box.getAttribute("data-refresh");
    var every = Math.max(2, Number(box.getAttribute("data-every")) || 5) * 1000;
    var note = document.getElementById("live-note");
    var timer = null;
    function stop(message) {
      if (timer) clearInterval(timer);
      timer = null;
      if (note) {
        note.textContent = message + " ";
        var a = document.createElement("a");
        a.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
        a.textContent = "Log in again";
        note.appendChild(a);
        note.className = "err live-note";
      }
    }
    function refresh() {
      if (document.visibilityState === "hidden") return;
      fetch(url, { headers: { "X-Tollgate-Refresh": "1" }, credentials: "same-origin", cache: "no-store" })
        .then(function (r) {
          if (r.redirected || r.status === 401 || r.status === 403) {
            stop("Live refresh stopped: the login session has ended.");
            return null;
          }
          return r.ok ? r.text() : null;
        })
        .then(function (html) {
          if (html === null || html === undefined) return;
          box.innerHTML = html;
          box.setAttribute("data-refreshed", String(Date.now()));
          hide();
        })
        .catch(function () { /* the next tick tries again */ });
    }
    timer = setInterval(refresh, every);
  }

  function start() {
    zones();
    live();
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start); else start();
})();
