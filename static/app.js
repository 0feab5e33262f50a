// The Button: the live countdown page. No library: a WebSocket, an SVG ring and Web Audio.
"use strict";

(function () {
  const body = document.body;
  const countEl = document.getElementById("count");
  const goalEl = document.getElementById("goal");
  const titleEl = document.getElementById("title");
  const progressEl = document.getElementById("progress");
  const cheerEl = document.getElementById("cheer");
  const noteEl = document.getElementById("note");
  const statusText = document.getElementById("status-text");
  const muteButton = document.getElementById("mute");
  const enableButton = document.getElementById("enable-sound");
  const confettiEl = document.getElementById("confetti");
  const pageVersion = body.dataset.version;
  const MUTE_KEY = "the-button:muted";
  const NOTE_MS = 6000; // how long a press's note stays up
  const RESUME_WAIT_MS = 1500; // a horn waits this long for suspended audio to resume
  const SHIFT_MINUTES = 4; // the layout moves a few pixels this often (screen burn-in)
  const SHIFTS = [[0, 0], [5, -3], [-4, 4], [2, 6], [-6, -2], [6, 3], [-3, -6], [4, -5], [-5, 1], [1, 5]];

  // What tests (and the curious) can read: how often the horn played, the socket's story.
  const hooks = {
    horns: 0, messages: 0, beats: 0, notes: 0, state: "connecting", soundBlocked: false,
    attempts: 0, connects: 0, gaveUp: 0, silences: 0, healthy: 0, retries: [], versionChecks: 0,
  };
  window.theButton = hooks;

  let count = Number(countEl.textContent);
  let goal = Number(goalEl.textContent);
  // The server's heartbeat interval in seconds (0: none) and its night hours ("19:00-07:00" or "").
  let beat = seconds(body.dataset.beat, 20);
  let nightHours = body.dataset.night || "";
  let live = true; // false while the server says it cannot keep the count current

  function seconds(value, fallback) {
    const n = Number(value);
    return isFinite(n) && n >= 0 && value !== "" && value !== undefined ? n : fallback;
  }

  // ---- the ring and the number ------------------------------------------------------
  function render(next, animate) {
    const changed = next.count !== count;
    count = next.count;
    goal = next.goal;
    countEl.textContent = String(count);
    goalEl.textContent = String(goal);
    if (typeof next.title === "string" && next.title) {
      titleEl.textContent = next.title;
    }
    document.title = count + " · " + titleEl.textContent;
    const done = goal > 0 ? (goal - count) / goal : 0;
    progressEl.setAttribute("stroke-dashoffset", (100 - 100 * done).toFixed(3));
    // A round line cap draws a dot even for a zero-length stroke: nothing done shows nothing.
    progressEl.classList.toggle("empty", done <= 0);
    const reached = count === 0;
    body.classList.toggle("goal", reached);
    cheerEl.hidden = !reached;
    if (animate && changed) {
      countEl.classList.remove("bump");
      void countEl.offsetWidth; // restart the animation
      countEl.classList.add("bump");
      if (reached) {
        celebrate();
      }
    }
  }

  function celebrate() {
    const colors = ["#ffd34d", "#3ddc97", "#22b8f0", "#ff6b6b", "#c58bff", "#ffffff"];
    confettiEl.textContent = "";
    for (let i = 0; i < 140; i++) {
      const piece = document.createElement("i");
      piece.style.left = (Math.random() * 100).toFixed(2) + "vw";
      piece.style.background = colors[i % colors.length];
      piece.style.animationDuration = (2.5 + Math.random() * 2.5).toFixed(2) + "s";
      piece.style.animationDelay = (Math.random() * 1.2).toFixed(2) + "s";
      piece.style.setProperty("--drift", ((Math.random() - 0.5) * 30).toFixed(1) + "vw");
      piece.style.setProperty("--spin", Math.round(360 + Math.random() * 1080) + "deg");
      confettiEl.appendChild(piece);
    }
    hooks.celebrations = (hooks.celebrations || 0) + 1;
    window.setTimeout(function () { confettiEl.textContent = ""; }, 7000);
  }

  // A press's note ("Acme Corp!"), big for a few seconds. Untrusted text: textContent only.
  let noteTimer = null;
  function showNote(text) {
    noteEl.textContent = text.slice(0, 140);
    // Smaller type for longer notes, so that up to 100 characters show whole under the count.
    const length = Array.from(noteEl.textContent).length;
    noteEl.classList.toggle("medium", length > 30 && length <= 60);
    noteEl.classList.toggle("long", length > 60);
    noteEl.hidden = false;
    noteEl.classList.remove("pop");
    void noteEl.offsetWidth; // restart the animation for a note that follows another
    noteEl.classList.add("pop");
    hooks.notes += 1;
    window.clearTimeout(noteTimer);
    noteTimer = window.setTimeout(function () {
      noteEl.hidden = true;
      noteEl.textContent = "";
    }, NOTE_MS);
  }

  // ---- TV care ----------------------------------------------------------------------
  // Screens that show one picture for months burn in: every few minutes the whole page moves
  // a few pixels. During the night hours the page dims, but the count always stays readable.
  function isNight(hours, minutes) {
    const m = /^(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})$/.exec(hours || "");
    if (!m) {
      return false;
    }
    const start = Number(m[1]) * 60 + Number(m[2]);
    const end = Number(m[3]) * 60 + Number(m[4]);
    if (start === end) {
      return false;
    }
    return start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
  }

  function tvCare() {
    const now = new Date(); // local time: the hours people live by
    const slot = Math.floor(now.getTime() / (SHIFT_MINUTES * 60000)) % SHIFTS.length;
    const shift = SHIFTS[slot];
    body.style.setProperty("--shift-x", shift[0] + "px");
    body.style.setProperty("--shift-y", shift[1] + "px");
    body.dataset.shift = shift[0] + "," + shift[1];
    body.dataset.dim = isNight(nightHours, now.getHours() * 60 + now.getMinutes()) ? "on" : "off";
  }
  hooks.isNight = isNight;
  hooks.tvCare = tvCare;

  // ---- sound ------------------------------------------------------------------------
  let audio = null;
  let muted = false;
  try {
    muted = window.localStorage.getItem(MUTE_KEY) === "1";
  } catch (e) {
    muted = false; // storage may be off (private mode): not remembered, still works
  }

  function audioContext() {
    if (!audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) {
        return null;
      }
      audio = new Ctx();
      audio.addEventListener("statechange", showSoundState);
    }
    return audio;
  }

  function showSoundState() {
    body.dataset.sound = muted ? "muted" : (audio && audio.state === "running" ? "on" : "blocked");
    muteButton.setAttribute("aria-pressed", muted ? "true" : "false");
    muteButton.textContent = muted ? "Sound off" : "Sound on";
    muteButton.title = muted ? "Sound is off: click to turn the air horn on" : "Mute the air horn";
    const ctx = audio;
    hooks.audioState = ctx ? ctx.state : "none";
    hooks.soundBlocked = !muted && (!ctx || ctx.state !== "running");
    enableButton.hidden = !hooks.soundBlocked;
  }

  function unlockSound() {
    const ctx = audioContext();
    if (ctx && ctx.state !== "running") {
      ctx.resume().then(showSoundState, showSoundState);
    }
    showSoundState();
  }

  // Test hook: what a browser does to a page's audio on its own (power saving, device change).
  hooks.suspendAudio = function () {
    return audio ? audio.suspend() : null;
  };

  function horn() {
    if (muted) {
      return;
    }
    const ctx = audioContext();
    if (!ctx) {
      return;
    }
    if (ctx.state === "running") {
      blast(ctx);
      return;
    }
    // Suspended ("interrupted" on Safari) since it last played: ask for it back and sound once
    // it is. Where the browser wants a gesture first, resume() just waits: then the "enable
    // sound" button shows, and no horn goes off long after its press.
    let late = false;
    const wait = window.setTimeout(function () {
      late = true;
      hooks.hornsMissed = (hooks.hornsMissed || 0) + 1;
      showSoundState();
    }, RESUME_WAIT_MS);
    ctx.resume().then(function () {
      window.clearTimeout(wait);
      if (!late && ctx.state === "running") {
        blast(ctx);
      }
      showSoundState();
    }, function () {
      window.clearTimeout(wait);
      showSoundState();
    });
  }

  // An air horn made here: a few detuned sawtooth voices, a low-pass filter and a
  // short blast-gap-blast envelope. No sound file, so no licence to worry about.
  function blast(ctx) {
    hooks.horns += 1;
    body.dataset.horns = String(hooks.horns); // readable without running script in the page
    const t0 = ctx.currentTime + 0.01;
    const out = ctx.createGain();
    out.gain.value = 0.0001;
    const filter = ctx.createBiquadFilter();
    filter.type = "lowpass";
    filter.frequency.value = 2400;
    filter.Q.value = 2;
    filter.connect(out);
    out.connect(ctx.destination);
    const blasts = [[0, 0.22], [0.3, 0.95]];
    blasts.forEach(function (b) {
      out.gain.setValueAtTime(0.0001, t0 + b[0]);
      out.gain.exponentialRampToValueAtTime(0.35, t0 + b[0] + 0.03);
      out.gain.setValueAtTime(0.35, t0 + b[1] - 0.08);
      out.gain.exponentialRampToValueAtTime(0.0001, t0 + b[1]);
    });
    [233, 235.5, 349, 466].forEach(function (f) {
      const osc = ctx.createOscillator();
      osc.type = "sawtooth";
      osc.frequency.setValueAtTime(f * 0.94, t0);
      osc.frequency.exponentialRampToValueAtTime(f, t0 + 0.08);
      osc.connect(filter);
      osc.start(t0);
      osc.stop(t0 + 1.0);
    });
  }

  muteButton.addEventListener("click", function () {
    muted = !muted;
    try {
      window.localStorage.setItem(MUTE_KEY, muted ? "1" : "0");
    } catch (e) {
      // not remembered; the toggle still works for this page
    }
    if (!muted) {
      unlockSound();
    }
    showSoundState();
  });
  enableButton.addEventListener("click", unlockSound);
  // Any interaction with the page counts as the gesture browsers want before sound.
  ["pointerdown", "keydown"].forEach(function (name) {
    window.addEventListener(name, function () {
      if (!muted) {
        unlockSound();
      }
    }, { passive: true });
  });
  if (!muted) {
    unlockSound(); // starts at once where autoplay is allowed; else the button shows
  }
  showSoundState();

  // ---- the live feed ----------------------------------------------------------------
  // A connection can die without a word (the Pi lost power, the Wi-Fi dropped): the server
  // sends a heartbeat every `beat` seconds, and a socket that hears nothing for 1.25 beats is
  // given up. So is an attempt that does not open in time. The backoff starts over only
  // after a connection has proved itself, not on every open.
  let socket = null; // the current WebSocket, opening or open
  let attempts = 0; // failed connections since the last healthy one: the backoff exponent
  let retryTimer = null;
  let openTimer = null;
  let silenceTimer = null;
  let healthyTimer = null;

  function openTimeoutMs() {
    return 1000 * Math.min(10, Math.max(2, (beat || 20) / 2));
  }

  function healthyMs() {
    return 1000 * Math.min(10, Math.max(2, beat || 20));
  }

  function setConnection(state, text) {
    hooks.state = state;
    body.dataset.state = state;
    statusText.textContent = text;
  }

  function showLive() {
    body.dataset.live = live ? "yes" : "no";
    if (hooks.state === "live") {
      statusText.textContent = live ? "Live" : "Not live: the count may be behind";
    }
  }

  function feedUrl() {
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    return scheme + "//" + window.location.host + "/websocket";
  }

  function connect() {
    window.clearTimeout(retryTimer);
    retryTimer = null;
    if (socket) {
      return;
    }
    hooks.attempts += 1;
    let ws;
    try {
      ws = new WebSocket(feedUrl());
    } catch (e) {
      scheduleRetry();
      return;
    }
    socket = ws;
    let heardState = false;
    openTimer = window.setTimeout(function () {
      hooks.gaveUp += 1;
      drop(ws);
    }, openTimeoutMs());
    ws.onopen = function () {
      window.clearTimeout(openTimer);
      hooks.connects += 1;
      setConnection("live", "Live");
      showLive();
      heard(ws);
    };
    ws.onmessage = function (event) {
      heard(ws);
      if (receive(event.data) && !heardState) {
        heardState = true;
        healthyTimer = window.setTimeout(function () {
          attempts = 0;
          hooks.healthy += 1;
        }, healthyMs());
      }
    };
    ws.onclose = function () {
      drop(ws);
    };
  }

  // Any frame proves the connection alive; none for 1.25 beats and it is given up.
  function heard(ws) {
    window.clearTimeout(silenceTimer);
    if (beat > 0) {
      silenceTimer = window.setTimeout(function () {
        hooks.silences += 1;
        drop(ws);
      }, 1250 * beat);
    }
  }

  // Forget a socket and plan the next attempt. A silent socket's closing handshake may never
  // finish, so its handlers go first and it is not waited for.
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
    scheduleRetry();
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
      hooks.beats += 1;
      tvCare();
      return false;
    }
    if (typeof msg.count !== "number" || typeof msg.goal !== "number") {
      return false; // something newer servers may send: ignored
    }
    hooks.messages += 1;
    if (typeof msg.beat === "number" && msg.beat >= 0) {
      beat = msg.beat;
    }
    if ("night" in msg) {
      nightHours = typeof msg.night === "string" ? msg.night : "";
    }
    live = msg.live !== false;
    showLive();
    tvCare();
    if (msg.version && pageVersion && msg.version !== pageVersion) {
      newVersion(msg.version);
    }
    // Only a press sounds the horn; the state on (re)connect, an undo or a set do not.
    render(msg, msg.event !== "state");
    if (msg.event === "press") {
      if (typeof msg.note === "string" && msg.note.trim()) {
        showNote(msg.note.trim());
      }
      horn();
    }
    return true;
  }

  function scheduleRetry() {
    // Doubling delay, capped at 30 s, with jitter so that many screens do not return at once.
    const base = Math.min(30000, 500 * Math.pow(2, attempts));
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    attempts += 1;
    hooks.retries.push(base);
    if (hooks.retries.length > 50) {
      hooks.retries.shift();
    }
    setConnection("offline", "Disconnected: retrying in " + Math.ceil(delay / 1000) + " s");
    window.clearTimeout(retryTimer);
    retryTimer = window.setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!socket) {
      attempts = 0;
      connect();
    }
  }

  // A new version of the page: reload only once the server answers for it, so that a TV
  // never ends on the browser's error page (the server may be restarting). Until then the
  // old page runs on.
  let newestVersion = pageVersion;
  let versionTimer = null;
  let checking = false;

  function newVersion(version) {
    newestVersion = version;
    if (checking || versionTimer || newestVersion === pageVersion) {
      return;
    }
    checking = true;
    hooks.versionChecks += 1;
    window.fetch("/", { cache: "no-store" }).then(function (res) {
      if (res.status !== 200) {
        throw new Error("the page answered " + res.status);
      }
      return res.text();
    }).then(function (html) {
      if (html.indexOf("data-version=") < 0) {
        throw new Error("not our page"); // e.g. a captive portal
      }
      hooks.state = "reloading";
      window.location.reload();
    }).catch(function () {
      checking = false;
      versionTimer = window.setTimeout(function () {
        versionTimer = null;
        newVersion(newestVersion);
      }, 1000 * Math.min(30, Math.max(2, beat || 20)));
    });
  }

  // Back from sleep or a network change: do not wait out the backoff.
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      reconnectNow();
    }
  });

  render({ count: count, goal: goal }, false);
  tvCare();
  window.setInterval(tvCare, 30000);
  connect();
})();
