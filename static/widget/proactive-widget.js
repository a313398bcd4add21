/*! Proactive in-app messages widget.
 *
 * <script src="https://proactive.example/static/widget/proactive-widget.js"
 *         data-publishable-key="pk_..." data-token="<customer JWT from your backend>"
 *         data-api-base="https://proactive.example/api/v1" async></script>
 *
 * Renders inside a Shadow DOM (the host page's styles are left alone and do not leak in),
 * sends no cookies, and exposes window.ProactiveWidget.setToken(jwt) for token refresh.
 * Fires "proactive:unauthorized" on window when the token is refused.
 */
(function () {
  "use strict";
  var script = document.currentScript || document.querySelector("script[data-publishable-key]");
  if (!script || window.ProactiveWidget) return;
  var KEY = script.getAttribute("data-publishable-key") || "";
  var token = script.getAttribute("data-token") || "";
  var API = (script.getAttribute("data-api-base") || "/api/v1").replace(/\/+$/, "");
  var POLL_MS = Math.max(10, parseInt(script.getAttribute("data-poll-seconds") || "60", 10)) * 1000;

  var messages = [];
  var open = false;
  var timer = null;
  var stopped = false;

  function subject(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      return JSON.parse(atob(part)).sub || "";
    } catch (e) { return ""; }
  }
  function storeKey() { return "proactive-seen:" + KEY.slice(0, 12) + ":" + subject(token); }
  function seenIds() {
    try { return JSON.parse(localStorage.getItem(storeKey()) || "[]"); } catch (e) { return []; }
  }
  function rememberSeen(ids) {
    var all = seenIds();
    ids.forEach(function (id) { if (all.indexOf(id) < 0) all.push(id); });
    try { localStorage.setItem(storeKey(), JSON.stringify(all.slice(-200))); } catch (e) { /* private mode */ }
  }

  function request(method, path, body) {
    return fetch(API + path, {
      method: method,
      mode: "cors",
      credentials: "omit",
      cache: "no-store",
      headers: Object.assign(
        {"X-Publishable-Key": KEY, "Authorization": "Bearer " + token},
        body ? {"Content-Type": "application/json"} : {}
      ),
      body: body ? JSON.stringify(body) : undefined,
    }).then(function (res) {
      if (res.status === 401 || res.status === 403) {
        stopped = true;
        window.dispatchEvent(new CustomEvent("proactive:unauthorized", {detail: {status: res.status}}));
        throw new Error("unauthorized");
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      return res.json();
    });
  }
  function report(id, type) {
    return request("POST", "/inbox/" + encodeURIComponent(id) + "/events", {type: type}).catch(function () {});
  }

  // ---- DOM -------------------------------------------------------------------------------
  var host = document.createElement("div");
  host.setAttribute("data-proactive-widget", "");
  var root = host.attachShadow({mode: "open"});
  root.innerHTML =
    "<style>" +
    ":host{all:initial}" +
    "*{box-sizing:border-box;font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif}" +
    ".launcher{position:fixed;right:22px;bottom:22px;width:54px;height:54px;border-radius:50%;border:0;" +
    "background:#2f5bea;color:#fff;cursor:pointer;box-shadow:0 6px 18px rgba(20,30,60,.28);z-index:2147483646;" +
    "display:flex;align-items:center;justify-content:center}" +
    ".launcher svg{width:24px;height:24px}" +
    ".badge{position:absolute;top:-3px;right:-3px;min-width:21px;height:21px;padding:0 6px;border-radius:11px;" +
    "background:#e5484d;color:#fff;font-size:12px;font-weight:700;line-height:21px;text-align:center;border:2px solid #fff}" +
    ".badge[hidden]{display:none}" +
    ".panel{position:fixed;right:22px;bottom:88px;width:360px;max-width:calc(100vw - 32px);max-height:70vh;display:flex;" +
    "flex-direction:column;background:#fff;color:#1d2330;border-radius:14px;box-shadow:0 14px 40px rgba(20,30,60,.25);" +
    "z-index:2147483647;overflow:hidden;font-size:14px;line-height:1.45}" +
    ".panel[hidden]{display:none}" +
    ".head{display:flex;align-items:center;padding:14px 16px;background:#2f5bea;color:#fff;font-weight:700;font-size:15px}" +
    ".head span{flex:1}.head button{background:none;border:0;color:#fff;font-size:20px;cursor:pointer;line-height:1}" +
    ".list{overflow:auto;padding:10px}" +
    ".empty{padding:28px 12px;text-align:center;color:#677084}" +
    ".msg{position:relative;border:1px solid #e3e7ee;border-radius:10px;padding:12px 14px;margin-bottom:10px;background:#fff}" +
    ".msg.unread{border-color:#b9c8f7;background:#f7f9ff}" +
    ".msg h3{margin:0 26px 6px 0;font-size:15px}" +
    ".body p{margin:0 0 8px}.body a{color:#2f5bea}.body ul,.body ol{margin:0 0 8px;padding-left:20px}" +
    ".dismiss{position:absolute;top:8px;right:8px;border:0;background:none;color:#8a93a6;font-size:18px;cursor:pointer}" +
    ".cta{display:inline-block;margin:4px 0 8px;padding:7px 13px;background:#2f5bea;color:#fff;border-radius:7px;" +
    "text-decoration:none;font-weight:600;font-size:13px}" +
    ".helpful{display:flex;gap:6px;align-items:center;color:#677084;font-size:12px;border-top:1px dashed #e3e7ee;padding-top:8px}" +
    ".helpful button{border:1px solid #dde1e8;background:#fff;border-radius:6px;padding:2px 9px;cursor:pointer;font-size:12px}" +
    ".time{color:#8a93a6;font-size:11px;margin-bottom:4px}" +
    "</style>" +
    "<button class='launcher' part='launcher' aria-label='Messages' aria-expanded='false'>" +
    "<svg viewBox='0 0 24 24' fill='none' stroke='currentColor' stroke-width='2' stroke-linecap='round' " +
    "stroke-linejoin='round'><path d='M18 8a6 6 0 0 0-12 0c0 7-3 9-3 9h18s-3-2-3-9'/><path d='M13.7 21a2 2 0 0 1-3.4 0'/></svg>" +
    "<span class='badge' hidden>0</span></button>" +
    "<section class='panel' role='dialog' aria-label='Messages' hidden>" +
    "<div class='head'><span>Messages</span><button class='close' aria-label='Close'>&times;</button></div>" +
    "<div class='list'></div></section>";

  var launcher = root.querySelector(".launcher");
  var badge = root.querySelector(".badge");
  var panel = root.querySelector(".panel");
  var list = root.querySelector(".list");

  // The server sanitises body_html already; this is a second fence in case of a bad proxy.
  // An allow-list (the server's tags, links to http(s)/mailto only): anything else is
  // replaced by its text, so unknown or namespaced elements (svg, math, base, link, meta)
  // never reach the page.
  var ALLOWED = /^(A|B|BLOCKQUOTE|BR|CODE|EM|H3|H4|HR|I|LI|OL|P|PRE|STRONG|UL)$/;
  function safeFragment(htmlText) {
    var tpl = document.createElement("template");
    tpl.innerHTML = htmlText;
    var out = document.createDocumentFragment();
    (function copy(from, to) {
      Array.prototype.forEach.call(from.childNodes, function (n) {
        if (n.nodeType === 3) { to.appendChild(document.createTextNode(n.nodeValue)); return; }
        if (n.nodeType !== 1) return;
        var tag = n.namespaceURI === "http://www.w3.org/1999/xhtml" ? n.tagName : "";
        if (/^(SCRIPT|STYLE|TEMPLATE|NOSCRIPT|TEXTAREA|TITLE)$/.test(tag)) return;
        if (!ALLOWED.test(tag)) { copy(n, to); return; }
        var clean = document.createElement(tag.toLowerCase());
        if (tag === "A") {
          var href = (n.getAttribute("href") || "").trim();
          if (/^(https?:|mailto:)/i.test(href)) clean.setAttribute("href", href);
          if (n.getAttribute("title")) clean.setAttribute("title", n.getAttribute("title"));
          clean.setAttribute("target", "_blank");
          clean.setAttribute("rel", "noopener noreferrer");
        }
        copy(n, clean);
        to.appendChild(clean);
      });
    })(tpl.content, out);
    return out;
  }

  function el(tag, cls, text) {
    var n = document.createElement(tag);
    if (cls) n.className = cls;
    if (text != null) n.textContent = text;
    return n;
  }

  function unreadCount() {
    var seen = seenIds();
    return messages.filter(function (m) { return seen.indexOf(m.id) < 0; }).length;
  }

  function render() {
    var count = unreadCount();
    badge.textContent = count > 9 ? "9+" : String(count);
    badge.hidden = count === 0;
    launcher.setAttribute("aria-label", count ? "Messages, " + count + " unread" : "Messages");
    list.textContent = "";
    if (!messages.length) {
      list.appendChild(el("div", "empty", "No messages right now."));
      return;
    }
    var seen = seenIds();
    messages.forEach(function (m) {
      var card = el("article", "msg" + (seen.indexOf(m.id) < 0 ? " unread" : ""));
      card.setAttribute("data-id", m.id);
      if (m.sent_at) card.appendChild(el("div", "time", new Date(m.sent_at).toLocaleString()));
      card.appendChild(el("h3", null, m.title));
      var body = el("div", "body");
      body.appendChild(safeFragment(m.body_html || ""));
      card.appendChild(body);
      if (m.cta_label && /^https?:\/\//i.test(m.cta_url || "")) {
        var cta = el("a", "cta", m.cta_label);
        cta.href = m.cta_url;
        cta.target = "_blank";
        cta.rel = "noopener noreferrer";
        cta.addEventListener("click", function () { report(m.id, "clicked"); });
        card.appendChild(cta);
      }
      var dismiss = el("button", "dismiss", "\u00d7");
      dismiss.setAttribute("aria-label", "Dismiss");
      dismiss.addEventListener("click", function () {
        messages = messages.filter(function (x) { return x.id !== m.id; });
        report(m.id, "dismissed");
        render();
      });
      card.appendChild(dismiss);
      var ask = el("div", "helpful");
      ask.appendChild(el("span", null, "Was this helpful?"));
      [["Yes", "helpful"], ["No", "not_helpful"]].forEach(function (pair) {
        var b = el("button", null, pair[0]);
        b.addEventListener("click", function () {
          report(m.id, pair[1]);
          ask.textContent = "Thanks for telling us.";
        });
        ask.appendChild(b);
      });
      card.appendChild(ask);
      list.appendChild(card);
    });
  }

  function markSeen() {
    var seen = seenIds();
    var fresh = messages.filter(function (m) { return seen.indexOf(m.id) < 0; }).map(function (m) { return m.id; });
    if (!fresh.length) return;
    rememberSeen(fresh);
    fresh.forEach(function (id) { report(id, "seen"); });
  }

  function toggle(force) {
    open = typeof force === "boolean" ? force : !open;
    panel.hidden = !open;
    launcher.setAttribute("aria-expanded", String(open));
    if (open) markSeen();
    render();
  }
  launcher.addEventListener("click", function () { toggle(); });
  root.querySelector(".close").addEventListener("click", function () { toggle(false); });
  root.addEventListener("keydown", function (e) { if (e.key === "Escape") toggle(false); });

  function poll() {
    clearTimeout(timer);
    if (stopped || !token) return;
    if (document.hidden) { timer = setTimeout(poll, POLL_MS); return; }
    request("GET", "/inbox").then(function (data) {
      messages = Array.isArray(data.messages) ? data.messages : [];
      if (open) markSeen();
      render();
    }).catch(function () {}).then(function () {
      if (!stopped) timer = setTimeout(poll, POLL_MS);
    });
  }
  document.addEventListener("visibilitychange", function () { if (!document.hidden && !stopped) poll(); });

  function mount() {
    document.body.appendChild(host);
    render();
    poll();
  }
  if (document.body) mount(); else document.addEventListener("DOMContentLoaded", mount);

  window.ProactiveWidget = {
    setToken: function (jwt) { token = jwt; stopped = false; poll(); },
    refresh: poll,
    open: function () { toggle(true); },
    close: function () { toggle(false); },
  };
})();
