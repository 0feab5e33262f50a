// The Button: the admin page. Sign in with the admin token, then press, undo and set the
// count, goal and title through the JSON API; the live state comes from the feed (static/feed.js).
//
// The token lives in one variable of this closure only: never in a URL, a cookie, storage or
// the console; it goes to the server only as an Authorization header on fetch(). Since no
// cookie carries it, a page from another site cannot write through this browser (no CSRF).
"use strict";

(function () {
  const body = document.body;
  const $ = function (id) { return document.getElementById(id); };
  const LATEST = 20; // presses in the table
  const limits = JSON.parse(body.dataset.limits || "{}"); // the server's (thebutton/validation.py)
  const t = window.ButtonFeed.t; // the page's words (static/feed.js)
  const tn = window.ButtonFeed.tn;

  // Characters as the server counts them: code points, so that an emoji is one, not two
  // (an input's maxlength counts UTF-16 units and would allow only half as many emoji).
  function tooLong(text, most) {
    return most && Array.from(text).length > most;
  }

  const hooks = { loads: 0, feed: null }; // feed: the live feed's own story (static/feed.js)
  window.theAdmin = hooks; // what tests read; never the token

  let token = null; // the admin token once the server has accepted it
  let current = null; // the latest state from the feed or a write

  // ---- words next to what caused them ------------------------------------------------
  function say(id, text) {
    const el = $(id);
    el.textContent = text || "";
    el.hidden = !text;
    const input = document.querySelector("[aria-describedby='" + id + "']");
    if (input && input.tagName === "INPUT") {
      input.setAttribute("aria-invalid", text ? "true" : "false");
    }
  }

  function clear(ids) {
    ids.forEach(function (id) { say(id, ""); });
  }

  let doneTimer = null;
  function done(id, text) {
    clear(["press-done", "save-done"]);
    say(id, text);
    window.clearTimeout(doneTimer);
    doneTimer = window.setTimeout(function () { say(id, ""); }, 4000);
  }

  // ---- the API -----------------------------------------------------------------------
  // One write: the token as a bearer header, a JSON body, the answer as {status, body}.
  // A network failure is an answer too (status 0), so every caller shows words.
  function api(method, path, payload) {
    const init = {
      method: method,
      headers: { "Authorization": "Bearer " + token },
      cache: "no-store",
      credentials: "omit",
      redirect: "error",
    };
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    return window.fetch(path, init).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        return { status: res.status, body: json || {}, retryAfter: res.headers.get("Retry-After") };
      });
    }, function () {
      return { status: 0, body: { error: t("admin.no_answer") } };
    });
  }

  function errorText(answer) {
    const words = answer.body && typeof answer.body.error === "string" ? answer.body.error : "";
    if (answer.status === 0) {
      return words;
    }
    // The server's own words (the API speaks English), else ours in the page's language.
    return words ? capital(words) : t("admin.server_answered", { status: String(answer.status) });
  }

  function capital(text) {
    return text.charAt(0).toUpperCase() + text.slice(1) + (/[.!?]$/.test(text) ? "" : ".");
  }

  // The token stopped working (changed on the server, or the write API was turned off).
  function unauthorized(answer) {
    if (answer.status !== 401 && answer.status !== 403) {
      return false;
    }
    signOut();
    say("token-error", t("admin.signed_out", { reason: errorText(answer) }));
    return true;
  }

  // ---- signing in ----------------------------------------------------------------------
  const tokenInput = $("token");

  $("signin-form").addEventListener("submit", function (event) {
    event.preventDefault();
    const given = tokenInput.value.trim();
    tokenInput.value = ""; // out of the field at once: the variable below is its only home
    clear(["token-error"]);
    if (!given) {
      say("token-error", t("admin.enter_token"));
      tokenInput.focus();
      return;
    }
    $("sign-in").disabled = true;
    token = given;
    api("POST", "/api/auth").then(function (answer) {
      $("sign-in").disabled = false;
      if (answer.status === 200) {
        signedIn();
        return;
      }
      token = null;
      if (answer.status === 403 && /wrong token/i.test(answer.body.error || "")) {
        say("token-error", t("admin.wrong_token"));
      } else if (answer.status === 429) {
        const wait = Number(answer.retryAfter);
        say("token-error", answer.retryAfter && isFinite(wait) ? t("admin.too_many", { s: wait }) : t("admin.too_many_minute"));
      } else {
        say("token-error", errorText(answer));
      }
      tokenInput.focus();
    });
  });

  function signedIn() {
    body.dataset.signedIn = "yes";
    $("signin").hidden = true;
    $("controls").hidden = false;
    $("sign-out").hidden = false;
    clear(["token-error", "note-error", "press-error", "undo-error", "save-error",
      "set-count-error", "set-goal-error", "set-title-error", "who-error"]);
    dirty.clear();
    if (current) {
      show(current);
    }
    loadLatest();
    loadNames();
    loadScreens();
    loadDevices();
    $("note").focus();
  }

  function signOut() {
    token = null;
    body.dataset.signedIn = "no";
    $("device-url").value = ""; // a device's URL is shown once, to whoever added it
    $("device-new").hidden = true;
    $("devices-rows").textContent = "";
    $("controls").hidden = true;
    $("sign-out").hidden = true;
    $("signin").hidden = false;
    tokenInput.value = "";
    tokenInput.focus();
  }

  $("sign-out").addEventListener("click", function () {
    signOut();
    clear(["token-error"]);
  });

  // ---- press and undo ---------------------------------------------------------------------
  const noteInput = $("note");
  const whoInput = $("who");
  const WHO_KEY = "the-button-who";
  whoInput.value = window.sessionStorage.getItem(WHO_KEY) || "";

  // The names of the last 30 days, for the "Who" field to suggest (latest spelling first).
  function loadNames() {
    window.fetch("/api/history?limit=" + (limits.history || 1000), { cache: "no-store", credentials: "omit" })
      .then(function (res) { return res.ok ? res.json() : { presses: [] }; })
      .then(function (json) {
        const since = Date.now() - 30 * 24 * 3600 * 1000;
        const seen = new Set();
        const list = $("who-names");
        list.textContent = "";
        (json.presses || []).forEach(function (p) {
          const key = typeof p.by === "string" ? p.by.toLowerCase() : "";
          if (!key || seen.has(key) || new Date(p.at).getTime() < since) {
            return;
          }
          seen.add(key);
          const option = document.createElement("option");
          option.value = p.by;
          list.appendChild(option);
        });
        hooks.names = seen.size;
      }, function () { /* suggestions are a help, not a need */ });
  }

  $("press-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!token) {
      return;
    }
    clear(["note-error", "who-error", "press-error", "undo-error"]);
    const note = noteInput.value.trim();
    const by = whoInput.value.trim();
    if (tooLong(note, limits.note)) {
      say("note-error", t("admin.note_too_long", { n: limits.note }));
      return;
    }
    if (tooLong(by, limits.name)) {
      say("who-error", t("admin.name_too_long", { n: limits.name }));
      return;
    }
    const body = {};
    if (note) {
      body.note = note;
    }
    if (by) {
      body.by = by;
    }
    const button = $("press");
    button.disabled = true;
    api("POST", "/api/press", note || by ? body : undefined).then(function (answer) {
      button.disabled = false;
      if (answer.status === 200) {
        noteInput.value = ""; // a note goes with one press only; the name stays for the next
        window.sessionStorage.setItem(WHO_KEY, by); // remembered for this tab
        show(answer.body);
        const pressed = note ? t("admin.pressed_note", { note: note }) : t("admin.pressed");
        done("press-done", by ? t("admin.by", { by: by, text: pressed }) : pressed);
      } else if (!unauthorized(answer)) {
        // A bad note or name is that field's fault; anything else (503, 429, ...) belongs to the button.
        const words = errorText(answer);
        const field = answer.status !== 400 ? "press-error" : /^by\b/.test(answer.body.error || "") ? "who-error"
          : note ? "note-error" : "press-error";
        say(field, words);
      }
    });
  });

  $("undo").addEventListener("click", function () {
    if (!token) {
      return;
    }
    clear(["press-error", "undo-error"]);
    const button = $("undo");
    button.disabled = true;
    api("POST", "/api/undo").then(function (answer) {
      button.disabled = false;
      if (answer.status === 200) {
        show(answer.body);
        done("press-done", t("admin.undone"));
      } else if (!unauthorized(answer)) {
        say("undo-error", answer.status === 409 ? t("admin.nothing_to_undo", { reason: errorText(answer) }) : errorText(answer));
      }
    });
  });

  // ---- count, goal and title ----------------------------------------------------------------
  const fields = { count: $("set-count"), goal: $("set-goal"), title: $("set-title") };
  const dirty = new Set(); // fields the admin has typed in since they were last filled
  Object.keys(fields).forEach(function (name) {
    fields[name].addEventListener("input", function () {
      dirty.add(name);
      say("set-" + name + "-error", "");
    });
  });

  // Fill the fields from a state, except those being edited.
  function fill(state, force) {
    const values = { count: String(state.count), goal: String(state.goal), title: state.title ? window.ButtonFeed.heading(state) : "" };  // the default heading in the page's language
    Object.keys(fields).forEach(function (name) {
      if (force || !dirty.has(name)) {
        fields[name].value = values[name];
        dirty.delete(name);
      }
    });
  }

  $("settings-form").addEventListener("submit", function (event) {
    event.preventDefault();
    if (!token) {
      return;
    }
    clear(["save-error", "set-count-error", "set-goal-error", "set-title-error"]);
    // Only what was changed is sent: an untouched title stays the default heading.
    const change = {};
    let bad = false;
    ["count", "goal"].forEach(function (name) {
      if (!dirty.has(name)) {
        return;
      }
      const raw = fields[name].value.trim();
      if (!/^-?\d+$/.test(raw)) {
        say("set-" + name + "-error", t(name === "count" ? "admin.count_whole" : "admin.goal_whole"));
        bad = true;
        return;
      }
      change[name] = Number(raw);
    });
    if (dirty.has("title")) {
      change.title = fields.title.value.trim();
      if (tooLong(change.title, limits.title)) {
        say("set-title-error", t("admin.title_too_long", { n: limits.title }));
        bad = true;
      }
    }
    if (bad) {
      return;
    }
    if (Object.keys(change).length === 0) {
      say("save-error", t("admin.nothing_changed"));
      return;
    }
    const button = $("save");
    button.disabled = true;
    api("PUT", "/api/count", change).then(function (answer) {
      button.disabled = false;
      if (answer.status === 200) {
        show(answer.body);
        fill(answer.body, true);
        done("save-done", t("admin.saved"));
      } else if (!unauthorized(answer)) {
        say(blame(answer, change), errorText(answer));
      }
    });
  });

  // Which field an error is about: the one its words name (the API says "count must not be
  // more than the goal (20)"), else the only field sent, else the Save button.
  function blame(answer, change) {
    const words = (answer.body.error || "").toLowerCase();
    if (answer.status === 400) {
      const named = ["count", "goal", "title"].filter(function (name) {
        return name in change && new RegExp("\\b" + name + "\\b").test(words);
      });
      if (named.length) {
        return "set-" + named[0] + "-error";
      }
      const sent = Object.keys(change);
      if (sent.length === 1) {
        return "set-" + sent[0] + "-error";
      }
    }
    return "save-error";
  }

  // ---- the state and the latest presses ---------------------------------------------------
  function show(state) {
    if (typeof state.count !== "number" || typeof state.goal !== "number") {
      return;
    }
    current = Object.assign({}, current || {}, state);
    $("count").textContent = String(current.count);
    $("goal").textContent = String(current.goal);
    if (typeof current.title === "string") {
      $("state-title").textContent = window.ButtonFeed.heading(current);
      $("heading").textContent = window.ButtonFeed.heading(current);
      document.title = t("admin.heading") + " · " + window.ButtonFeed.heading(current);
    }
    $("presses").textContent = typeof current.presses === "number"
      ? tn("admin.presses_in_all", current.presses) : "";
    const share = current.goal > 0 ? (current.goal - current.count) / current.goal : 0;
    $("meter").style.width = (100 * Math.max(0, Math.min(1, share))).toFixed(1) + "%";
    body.classList.toggle("goal-reached", current.count === 0);
    fill(current, false);
  }

  // The latest presses, fetched again after each message; one request at a time.
  let loading = false;
  let again = false;
  function loadLatest() {
    if (!token) {
      return;
    }
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    window.fetch("/api/history?limit=" + LATEST, { cache: "no-store", credentials: "omit" })
      .then(function (res) {
        return res.json().then(function (json) {
          if (!res.ok) {
            throw new Error((json && json.error) || t("page.server_answered", { status: String(res.status) }));
          }
          return json;
        });
      })
      .then(function (json) {
        say("latest-error", "");
        table(json.presses || []);
        hooks.loads += 1;
      }, function (e) {
        say("latest-error", t("admin.cannot_load", { reason: e.message }));
      })
      .then(function () {
        loading = false;
        if (again) {
          again = false;
          loadLatest();
        }
      });
  }

  function table(presses) {
    const rows = $("latest-rows");
    rows.textContent = "";
    presses.forEach(function (p) {
      rows.appendChild(window.ButtonFeed.pressRow(p, when(p.at)));
    });
    $("latest-empty").hidden = presses.length > 0;
  }

  function when(iso) {
    const at = new Date(iso);
    if (isNaN(at.getTime())) {
      return iso;
    }
    const today = new Date();
    const sameDay = at.toDateString() === today.toDateString();
    const time = at.toLocaleTimeString(window.ButtonFeed.lang, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
    return sameDay ? time : at.toLocaleDateString(window.ButtonFeed.lang, { month: "short", day: "numeric" }) + " " + time;
  }

  // ---- the screens (GET /api/screens; Reload and Identify) ---------------------------------
  const SCREENS_EVERY_MS = 10000; // the list is asked for again this often while signed in
  const SOUND_WORDS = { on: "admin.sound_on", off: "admin.sound_off", blocked: "admin.sound_blocked" };

  // How long ago, roughly, in the page's language ("2 hours ago", "vor 2 Stunden").
  const relative = typeof Intl.RelativeTimeFormat === "function"
    ? new Intl.RelativeTimeFormat(window.ButtonFeed.lang, { numeric: "always" }) : null;
  function ago(iso) {
    const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
    if (isNaN(s)) {
      return iso;
    }
    const unit = s < 60 ? ["second", 1] : s < 3600 ? ["minute", 60] : s < 86400 ? ["hour", 3600] : ["day", 86400];
    const n = Math.round(s / unit[1]);
    return relative ? relative.format(-n, unit[0]) : window.ButtonFeed.number(n) + " " + unit[0] + "(s)";
  }

  let screensTimer = null;
  function loadScreens() {
    window.clearTimeout(screensTimer);
    if (!token) {
      return;
    }
    api("GET", "/api/screens").then(function (answer) {
      if (answer.status === 200) {
        say("screens-error", "");
        screensTable(answer.body.screens || []);
        hooks.screenLoads = (hooks.screenLoads || 0) + 1;
      } else if (!unauthorized(answer)) {
        say("screens-error", t("admin.cannot_load_screens", { reason: errorText(answer) }));
      }
      if (token) {
        screensTimer = window.setTimeout(loadScreens, SCREENS_EVERY_MS);
      }
    });
  }

  function screensTable(screens) {
    const rows = $("screens-rows");
    rows.textContent = "";
    screens.forEach(function (s) {
      const tr = document.createElement("tr");
      tr.dataset.screen = s.screen;
      // At a glance: a dark TV, a TV without sound, a page of an old version.
      tr.classList.toggle("dark", !s.connected);
      tr.classList.toggle("muted", s.sound !== "on");
      tr.classList.toggle("old", !s.current);
      cell(tr, "name", s.screen); // people's text: textContent only
      cell(tr, "seen", s.connected ? t("admin.connected") : t("admin.last_seen", { ago: ago(s.last_seen) }))
        .title = s.address + " · " + s.last_seen;
      cell(tr, "sound", SOUND_WORDS[s.sound] ? t(SOUND_WORDS[s.sound]) : s.sound);
      cell(tr, "version", s.current ? t("admin.current") : t("admin.old")).title = s.version;
      cell(tr, "size", s.width + "×" + s.height); // pixels, no digit groups
      const actions = cell(tr, "actions", "");
      ["reload", "identify"].forEach(function (command) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = command;
        button.textContent = t(command === "reload" ? "admin.reload" : "admin.identify");
        button.disabled = !s.connected;
        button.addEventListener("click", function () { steer(command, s.screen, button); });
        actions.appendChild(button);
      });
      rows.appendChild(tr);
    });
    $("screens-empty").hidden = screens.length > 0;
  }

  function cell(tr, cls, text) {
    const td = document.createElement("td");
    td.className = cls;
    td.textContent = text;
    tr.appendChild(td);
    return td;
  }

  function steer(command, screen, button) {
    clear(["screens-error", "screens-done"]);
    button.disabled = true;
    api("POST", "/api/screens/" + command, { screen: screen }).then(function (answer) {
      button.disabled = false;
      if (answer.status === 200) {
        say("screens-done", tn("admin.sent", answer.body.sent));
        hooks.steered = (hooks.steered || 0) + 1;
      } else if (!unauthorized(answer)) {
        say("screens-error", errorText(answer));
        loadScreens();
      }
    });
  }

  // ---- the devices (GET/POST /api/devices, DELETE /api/devices/<name>) ---------------------
  const KINDS = { button: t("admin.kind_button"), pipedrive: "Pipedrive" }; // Pipedrive: a name, not a word

  function loadDevices() {
    if (!token) {
      return;
    }
    api("GET", "/api/devices").then(function (answer) {
      if (answer.status === 200) {
        say("devices-error", "");
        devicesTable(answer.body.devices || []);
        hooks.deviceLoads = (hooks.deviceLoads || 0) + 1;
      } else if (!unauthorized(answer)) {
        say("devices-error", t("admin.cannot_load_devices", { reason: errorText(answer) }));
      }
    });
  }

  function devicesTable(devices) {
    const rows = $("devices-rows");
    rows.textContent = "";
    devices.forEach(function (d) {
      const tr = document.createElement("tr");
      tr.dataset.device = d.name;
      cell(tr, "name", d.name); // people's text: textContent only
      cell(tr, "kind", KINDS[d.kind] || d.kind);
      cell(tr, "by", d.by || "");
      cell(tr, "seen", d.last_seen ? when(d.last_seen) : t("admin.never"));
      cell(tr, "presses", window.ButtonFeed.number(d.presses));
      const button = document.createElement("button");
      button.type = "button";
      button.className = "remove";
      button.textContent = t("admin.remove");
      button.addEventListener("click", function () { removeDevice(d.name, button); });
      cell(tr, "actions", "").appendChild(button);
      rows.appendChild(tr);
    });
    $("devices-empty").hidden = devices.length > 0;
  }

  $("device-form").addEventListener("submit", function (event) {
    event.preventDefault();
    clear(["devices-error", "devices-done"]);
    const name = $("device-name").value.trim();
    const by = $("device-by").value.trim();
    if (!name) {
      say("devices-error", t("admin.device_needs_name"));
      return;
    }
    const body = { name: name, kind: $("device-kind").value };
    if (by) {
      body.by = by;
    }
    $("device-add").disabled = true;
    api("POST", "/api/devices", body).then(function (answer) {
      $("device-add").disabled = false;
      if (answer.status === 201) {
        $("device-new-name").textContent = answer.body.name;
        $("device-url").value = window.location.origin + answer.body.url; // shown once, never stored
        $("device-new").hidden = false;
        $("device-name").value = "";
        $("device-by").value = "";
        loadDevices();
      } else if (!unauthorized(answer)) {
        say("devices-error", errorText(answer));
      }
    });
  });

  $("device-copy").addEventListener("click", function () {
    const field = $("device-url");
    field.select();
    const copied = navigator.clipboard && window.isSecureContext
      ? navigator.clipboard.writeText(field.value)
      : Promise.reject(new Error("no clipboard here"));
    copied.then(function () {
      done("devices-done", t("admin.copied"));
    }, function () {
      // Plain http on a LAN has no clipboard API: the selected text is one Ctrl+C away.
      say("devices-error", t("admin.copy_failed"));
    });
  });

  function removeDevice(name, button) {
    if (!window.confirm(t("admin.remove_confirm", { name: name }))) {
      return;
    }
    clear(["devices-error", "devices-done"]);
    button.disabled = true;
    api("DELETE", "/api/devices/" + encodeURIComponent(name)).then(function (answer) {
      if (answer.status === 204) {
        done("devices-done", t("admin.removed", { name: name }));
        $("device-new").hidden = true;
      } else if (!unauthorized(answer)) {
        say("devices-error", errorText(answer));
      }
      loadDevices();
    });
  }

  // ---- the live feed (static/feed.js) -----------------------------------------------------
  function onState(msg) {
    show(msg);
    loadLatest();
  }

  tokenInput.focus();
  hooks.feed = window.ButtonFeed.connect({ onState: onState });
})();
