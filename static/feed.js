// The Button: the live feed, the one WebSocket client of every page (the countdown, /admin,
// /history). Each page calls ButtonFeed.connect() once and draws what it is handed; the
// rules about connecting live here only:
// - the URL comes from location (wss: under https, the page's own host);
// - an attempt that does not open in time (at most 10 s) is given up and retried;
// - the server sends {"event": "beat"} every `beat` seconds (the page's data-beat, then the
//   "beat" of each state): a socket that hears nothing for 1.25 beats is given up, because a
//   connection can die without a word (the Pi lost power, the Wi-Fi dropped);
// - retries wait a doubling delay with jitter, which starts over only once a connection has
//   proved itself (a state, then a few healthy seconds), not on every open;
// - a state whose "version" is not the page's (data-version) reloads the page, but only once
//   the server answers for it, so that a TV never ends on the browser's error page; the
//   server's {"command": "reload"} reloads the same careful way (feed.reload());
// - a page may tell the server about itself (feed.send: the countdown page's hello); the
//   feed itself sends nothing.
// It also shows the connection where every page has it: body[data-state], body[data-live]
// and #status-text. Besides the feed, one thing /admin and /history both draw: a row of the
// latest presses (pressRow).
"use strict";

(function () {
  // ---- the page's words ----------------------------------------------------------------
  // The server writes the page's language in <html lang> and its catalogue
  // (thebutton/i18n/<lang>.json, all but the webhooks' keys) in body[data-words]. A key
  // that is missing shows as itself, so that a gap is seen, never a blank.
  const lang = document.documentElement.lang || "en";
  let catalogue = {};
  try {
    catalogue = JSON.parse(document.body.dataset.words || "{}");
  } catch (e) {
    catalogue = {};
  }
  const numbers = new Intl.NumberFormat(lang);
  const plurals = new Intl.PluralRules(lang);

  // table[key] when the table has it itself (not from Object's prototype), else undefined.
  function own(table, key) {
    return Object.prototype.hasOwnProperty.call(table, key) ? table[key] : undefined;
  }

  // The text of `key` with each {name} replaced by vars[name] (numbers in the page's way).
  function t(key, vars) {
    const text = own(catalogue, key) !== undefined ? catalogue[key] : key;
    return text.replace(/\{([a-z_]+)\}/g, function (whole, name) {
      if (!vars || !(name in vars)) {
        return whole;
      }
      const value = vars[name];
      return typeof value === "number" ? numbers.format(value) : String(value);
    });
  }

  // A sentence with the number n in it: key.one or key.other, as the language counts
  // (Intl.PluralRules); n is {n} in the text.
  function tn(key, n, vars) {
    const form = key + "." + plurals.select(n);
    const values = Object.assign({ n: n }, vars || {});
    return t(own(catalogue, form) !== undefined ? form : key + ".other", values);
  }

  // A length of time in seconds, the largest two units, e.g. "2 hr 5 min" (Intl's words).
  function duration(total) {
    const s = Math.max(0, Math.round(total));
    const d = Math.floor(s / 86400);
    const h = Math.floor((s % 86400) / 3600);
    const m = Math.floor((s % 3600) / 60);
    const parts = d ? [[d, "day"], [h, "hour"]] : h ? [[h, "hour"], [m, "minute"]] : m ? [[m, "minute"]] : [[s, "second"]];
    const shown = parts.filter(function (p, i) { return i === 0 || p[0] > 0; }).map(function (p) {
      return new Intl.NumberFormat(lang, { style: "unit", unit: p[1], unitDisplay: "short" }).format(p[0]);
    });
    return typeof Intl.ListFormat === "function"
      ? new Intl.ListFormat(lang, { type: "unit", style: "narrow" }).format(shown) : shown.join(" ");
  }

  // The heading of a state: the server's default one ("Countdown to 20", thebutton/feed.py)
  // in the page's language, any other title as it was set.
  function heading(msg) {
    return msg.title === "Countdown to " + msg.goal ? t("page.default_title", { goal: msg.goal }) : msg.title;
  }

  const WORDS = {
    connecting: t("feed.connecting"),
    live: t("feed.live"),
    notLive: t("feed.not_live"),
    offline: catalogue["feed.offline"] || "{s}",
  };

  function seconds(value, fallback) {
    const n = Number(value);
    return value !== "" && value !== undefined && isFinite(n) && n >= 0 ? n : fallback;
  }

  // A deadline from the heartbeat: `factor` beats, kept between 2 and 10 seconds.
  function deadline(beat, factor) {
    return 1000 * Math.min(10, Math.max(2, (beat || 20) * factor));
  }

  function feedUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/websocket";
  }

  // options: onState(state) for each message with a count and a goal; onBeat() for each
  // heartbeat; onMessage(msg) for any other JSON object; onOpen() after each socket opens
  // (the first and every reconnect); onStatus(state, retryMs) after the
  // connection's state changes ("live", "offline"); words: {notLive: ...} to override the
  // status texts. Returns the feed: its counters are what tests (and the curious) read.
  function connect(options) {
    const opts = options || {};
    const body = document.body;
    const statusText = document.getElementById("status-text");
    const words = Object.assign({}, WORDS, opts.words || {});
    const pageVersion = body.dataset.version || "";
    const feed = {
      state: "connecting", live: true, beat: seconds(body.dataset.beat, 20),
      attempts: 0, connects: 0, messages: 0, beats: 0, gaveUp: 0, silences: 0, healthy: 0,
      retries: [], versionChecks: 0, sent: 0,
    };

    let socket = null; // the current WebSocket, opening or open
    let failures = 0; // failed connections since the last healthy one: the backoff exponent
    let retryTimer = null;
    let openTimer = null;
    let silenceTimer = null;
    let healthyTimer = null;

    function show(state, retryMs) {
      feed.state = state;
      body.dataset.state = state;
      body.dataset.live = feed.live ? "yes" : "no";
      if (statusText) {
        statusText.textContent = state === "live" ? (feed.live ? words.live : words.notLive)
          : state === "offline" ? words.offline.replace("{s}", numbers.format(Math.ceil(retryMs / 1000)))
            : words.connecting;
      }
      if (opts.onStatus) {
        opts.onStatus(state, retryMs);
      }
    }

    function open() {
      window.clearTimeout(retryTimer);
      retryTimer = null;
      if (socket) {
        return;
      }
      feed.attempts += 1;
      let ws;
      try {
        ws = new WebSocket(feedUrl());
      } catch (e) {
        retry();
        return;
      }
      socket = ws;
      let heardState = false;
      openTimer = window.setTimeout(function () {
        feed.gaveUp += 1;
        drop(ws);
      }, deadline(feed.beat, 0.5));
      ws.onopen = function () {
        window.clearTimeout(openTimer);
        feed.connects += 1;
        show("live");
        heard(ws);
        if (opts.onOpen) {
          opts.onOpen();
        }
      };
      ws.onmessage = function (event) {
        heard(ws);
        if (receive(event.data) && !heardState) {
          heardState = true;
          healthyTimer = window.setTimeout(function () {
            failures = 0;
            feed.healthy += 1;
          }, deadline(feed.beat, 1));
        }
      };
      ws.onclose = function () {
        drop(ws);
      };
    }

    // Any frame proves the connection alive; none for 1.25 beats and it is given up.
    function heard(ws) {
      window.clearTimeout(silenceTimer);
      if (feed.beat > 0) {
        silenceTimer = window.setTimeout(function () {
          feed.silences += 1;
          drop(ws);
        }, 1250 * feed.beat);
      }
    }

    // Forget a socket and plan the next attempt. A silent socket's closing handshake may
    // never finish, so its handlers go first and it is not waited for.
    function drop(ws) {
      if (socket !== ws) {
        return;
      }
      socket = null;
      ws.onopen = ws.onmessage = ws.onclose = ws.onerror = null;
      window.clearTimeout(openTimer);
      window.clearTimeout(silenceTimer);
      window.clearTimeout(healthyTimer);
      try {
        ws.close();
      } catch (e) {
        // already closed
      }
      retry();
    }

    function retry() {
      // Doubling delay, capped at 30 s, with jitter so that many screens do not return at once.
      const base = Math.min(30000, 500 * Math.pow(2, failures));
      const delay = Math.round(base * (0.5 + Math.random() * 0.5));
      failures += 1;
      feed.retries.push(base);
      if (feed.retries.length > 50) {
        feed.retries.shift();
      }
      show("offline", delay);
      window.clearTimeout(retryTimer);
      retryTimer = window.setTimeout(open, delay);
    }

    // Back from sleep or a network change: do not wait out the backoff.
    function reconnectNow() {
      if (!socket) {
        failures = 0;
        open();
      }
    }

    // One message from the server; true when it carried the state.
    function receive(data) {
      let msg;
      try {
        msg = JSON.parse(data);
      } catch (e) {
        return false;
      }
      if (!msg || typeof msg !== "object") {
        return false;
      }
      if (msg.event === "beat") {
        feed.beats += 1;
        if (opts.onBeat) {
          opts.onBeat();
        }
        return false;
      }
      if (typeof msg.count !== "number" || typeof msg.goal !== "number") {
        if (opts.onMessage) {
          opts.onMessage(msg); // something newer servers may send: the page's to ignore
        }
        return false;
      }
      feed.messages += 1;
      feed.beat = seconds(msg.beat, feed.beat);
      feed.live = msg.live !== false;
      show("live");
      if (msg.version && pageVersion) {
        newestVersion = msg.version;
        newVersion();
      }
      if (opts.onState) {
        opts.onState(msg);
      }
      return true;
    }

    // A new version: reload only once the server answers with our page (it may be
    // restarting, or a captive portal may answer for it). Until then the old page runs on.
    let newestVersion = pageVersion;
    let versionTimer = null;
    let checking = false;

    let reloadAsked = false; // the server said {"command": "reload"}

    function newVersion() {
      if (checking || versionTimer || (newestVersion === pageVersion && !reloadAsked)) {
        return; // a check is under way, or the server went back to this page's version
      }
      checking = true;
      feed.versionChecks += 1;
      const here = window.location.pathname + window.location.search;
      window.fetch(here, { cache: "no-store", credentials: "omit" }).then(function (res) {
        if (res.status !== 200) {
          throw new Error("the page answered " + res.status);
        }
        return res.text();
      }).then(function (html) {
        if (html.indexOf("data-version=") < 0) {
          throw new Error("not our page");
        }
        feed.state = "reloading";
        window.location.reload();
      }).catch(function () {
        checking = false;
        versionTimer = window.setTimeout(function () {
          versionTimer = null;
          newVersion();
        }, 1000 * Math.min(30, Math.max(2, feed.beat || 20)));
      });
    }

    window.addEventListener("online", reconnectNow);
    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") {
        reconnectNow();
      }
    });

    // Reload as for a new version: once the server answers with our page.
    feed.reload = function () {
      reloadAsked = true;
      newVersion();
    };

    // Send a JSON message on the open socket; false when there is none (it goes on the next open).
    feed.send = function (msg) {
      if (!socket || socket.readyState !== WebSocket.OPEN) {
        return false;
      }
      socket.send(JSON.stringify(msg));
      feed.sent += 1;
      return true;
    };

    show("connecting");
    open();
    return feed;
  }

  // Where a press came from, in the page's words; another source (a future one) shows as itself.
  const SOURCES = {
    gpio: t("feed.source_gpio"),
    keyboard: t("feed.source_keyboard"),
    api: t("feed.source_api"),
    mqtt: t("feed.source_mqtt"),
  };

  // One press as a row of a "latest presses" table: when (in the page's words), source,
  // the count's change and the note. Notes are untrusted text: textContent only.
  function pressRow(p, when) {
    const tr = document.createElement("tr");
    tr.className = p.undone ? "undone" : "";
    tr.dataset.id = String(p.id);
    cell(tr, "when", when).title = p.at;
    cell(tr, "source", (p.source === "device" && p.device) || own(SOURCES, p.source) || p.source || ""); // a device by its name
    cell(tr, "change", numbers.format(p.count_before) + " → " + numbers.format(p.count_after));
    cell(tr, "by", p.by || "");
    const note = cell(tr, "note", p.note || "");
    if (p.undone) {
      const tag = document.createElement("span");
      tag.className = "tag undone";
      tag.textContent = t("feed.undone");
      note.insertBefore(tag, note.firstChild);
    }
    return tr;
  }

  function cell(tr, cls, text) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  // One leader of a board as a list item: its rank (when given), name and presses. The name
  // is people's text: textContent only.
  function leaderRow(leader, rank) {
    const li = document.createElement("li");
    const parts = rank ? [["rank", numbers.format(rank)]] : [];
    parts.push(["name", String(leader.by)], ["presses", numbers.format(leader.presses)]);
    parts.forEach(function (part) {
      const span = document.createElement("span");
      span.className = part[0];
      span.textContent = part[1];
      li.appendChild(span);
    });
    return li;
  }

  window.ButtonFeed = {
    connect: connect, pressRow: pressRow, leaderRow: leaderRow,
    lang: lang, t: t, tn: tn, duration: duration, heading: heading, number: numbers.format,
  };
})();
