// The Button: the live countdown page. No library: a WebSocket, an SVG ring and Web Audio.
"use strict";

(function () {
  const body = document.body;
  const countEl = document.getElementById("count");
  const goalEl = document.getElementById("goal");
  const titleEl = document.getElementById("title");
  const progressEl = document.getElementById("progress");
  const cheerEl = document.getElementById("cheer");
  const statusText = document.getElementById("status-text");
  const muteButton = document.getElementById("mute");
  const enableButton = document.getElementById("enable-sound");
  const confettiEl = document.getElementById("confetti");
  const pageVersion = body.dataset.version;
  const MUTE_KEY = "the-button:muted";

  // What tests (and the curious) can read: how often the horn played, the socket's state.
  const hooks = { horns: 0, messages: 0, connects: 0, state: "connecting", soundBlocked: false };
  window.theButton = hooks;

  let count = Number(countEl.textContent);
  let goal = Number(goalEl.textContent);

  // ---- the ring and the number ------------------------------------------------------
  function render(next, animate) {
    const changed = next.count !== count;
    count = next.count;
    goal = next.goal;
    countEl.textContent = String(count);
    goalEl.textContent = String(goal);
    if (next.title) {
      titleEl.textContent = next.title;
    }
    document.title = count + " · " + titleEl.textContent;
    const done = goal > 0 ? (goal - count) / goal : 0;
    progressEl.setAttribute("stroke-dashoffset", (100 - 100 * done).toFixed(3));
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

  // An air horn made here: a few detuned sawtooth voices, a low-pass filter and a
  // short blast-gap-blast envelope. No sound file, so no licence to worry about.
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
    } else {
      showSoundState(); // blocked until a gesture: the "enable sound" button says so
    }
  }

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
  let socket = null;
  let attempts = 0;
  let retryTimer = null;

  function setConnection(state, text) {
    hooks.state = state;
    body.dataset.state = state;
    statusText.textContent = text;
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
    let ws;
    try {
      ws = new WebSocket(feedUrl());
    } catch (e) {
      scheduleRetry();
      return;
    }
    socket = ws;
    ws.onopen = function () {
      attempts = 0;
      hooks.connects += 1;
      setConnection("live", "Live");
    };
    ws.onmessage = function (event) {
      let msg;
      try {
        msg = JSON.parse(event.data);
      } catch (e) {
        return;
      }
      if (typeof msg.count !== "number" || typeof msg.goal !== "number") {
        return;
      }
      hooks.messages += 1;
      if (msg.version && pageVersion && msg.version !== pageVersion) {
        // The server runs a newer page: load it (TVs nobody touches stay current).
        hooks.state = "reloading";
        window.location.reload();
        return;
      }
      // Only a press sounds the horn; the state on (re)connect, an undo or a set do not.
      render(msg, msg.event !== "state");
      if (msg.event === "press") {
        horn();
      }
    };
    ws.onclose = function () {
      if (socket === ws) {
        socket = null;
        scheduleRetry();
      }
    };
    ws.onerror = function () {
      // onclose follows and schedules the retry
    };
  }

  function scheduleRetry() {
    // Doubling delay, capped at 30 s, with jitter so that many screens do not return at once.
    const base = Math.min(30000, 500 * Math.pow(2, attempts));
    const delay = Math.round(base * (0.5 + Math.random() * 0.5));
    attempts += 1;
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

  // Back from sleep or a network change: do not wait out the backoff.
  window.addEventListener("online", reconnectNow);
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") {
      reconnectNow();
    }
  });

  render({ count: count, goal: goal }, false);
  connect();
})();
