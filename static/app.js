// The Button: the live countdown page. No library: an SVG ring and Web Audio; the live feed
// (connecting, the watchdog, backoff, version reload) is static/feed.js.
"use strict";

(function () {
  const body = document.body;
  const countEl = document.getElementById("count");
  const goalEl = document.getElementById("goal");
  const titleEl = document.getElementById("title");
  const progressEl = document.getElementById("progress");
  const cheerEl = document.getElementById("cheer");
  const noteEl = document.getElementById("note");
  const muteButton = document.getElementById("mute");
  const enableButton = document.getElementById("enable-sound");
  const confettiEl = document.getElementById("confetti");
  const limits = JSON.parse(body.dataset.limits); // the server's: {note, title, goal, history}
  const t = window.ButtonFeed.t; // the page's words (static/feed.js)
  const tn = window.ButtonFeed.tn;
  const MUTE_KEY = "the-button:muted";
  const SCREEN_KEY = "the-button:screen"; // the generated name of this browser's screen
  const IDENTIFY_MS = 10000; // how long the screen's name stays up after "identify"
  const RESIZE_WAIT_MS = 500; // a new size is told once the window stops changing for this long
  const NOTE_MS = 6000; // how long a press's note stays up
  const RESUME_WAIT_MS = 1500; // a horn waits this long for suspended audio to resume
  const SHIFT_MINUTES = 4; // the layout moves a few pixels this often (screen burn-in)
  const SHIFTS = [[0, 0], [5, -3], [-4, 4], [2, 6], [-6, -2], [6, 3], [-3, -6], [4, -5], [-5, 1], [1, 5]];

  // What tests (and the curious) can read: how often the horn played; hooks.feed is the
  // live feed's own story (static/feed.js).
  const hooks = { horns: 0, notes: 0, soundBlocked: false, feed: null };
  window.theButton = hooks;

  // The server wrote them the page's way (5.000 in German): the digits are the number.
  let count = Number(countEl.textContent.replace(/\D/g, ""));
  let goal = Number(goalEl.textContent.replace(/\D/g, ""));
  // The server's night hours ("19:00-07:00" or ""), as it checked them.
  let nightHours = body.dataset.night || "";

  // ---- the ring and the number ------------------------------------------------------
  function render(next, animate) {
    const changed = next.count !== count;
    count = next.count;
    goal = next.goal;
    countEl.textContent = window.ButtonFeed.number(count);
    goalEl.textContent = window.ButtonFeed.number(goal);
    if (typeof next.title === "string" && next.title) {
      titleEl.textContent = window.ButtonFeed.heading(next);
    }
    document.title = window.ButtonFeed.number(count) + " · " + titleEl.textContent;
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
    noteEl.textContent = Array.from(text).slice(0, limits.note).join("");
    // Smaller type for longer notes, so that the longest the server takes shows whole under the count.
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
  // The hours come from the server, which checked their form ("HH:MM-HH:MM"): only parsed here.
  function isNight(hours, minutes) {
    const parts = (hours || "").split(/[-:]/).map(Number);
    if (parts.length !== 4) {
      return false; // none
    }
    const start = parts[0] * 60 + parts[1];
    const end = parts[2] * 60 + parts[3];
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
    muteButton.textContent = muted ? t("countdown.sound_off") : t("countdown.sound_on");
    muteButton.title = muted ? t("countdown.unmute") : t("countdown.mute");
    const ctx = audio;
    hooks.audioState = ctx ? ctx.state : "none";
    hooks.soundBlocked = !muted && (!ctx || ctx.state !== "running");
    enableButton.hidden = !hooks.soundBlocked;
    sayHello();
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

  // ---- the screen's name and its hello (CONTRACT.md, "Screens you can see and steer") --
  // ?screen=NAME names it, else a name made once and kept in this browser, like "Screen 4f2a".
  // validName applies the server's rules for a name (thebutton/validation.py, check_name), so
  // that the page never keeps a name the server would refuse (it would never be listed).
  const BLANK_LOOKING = "\u115f\u1160\u3164\uffa0\u2800\u17b4\u17b5\u034f";
  function visible(ch) {
    return !/^[\s\p{Cf}\p{Mn}\p{Me}\p{Zs}]$/u.test(ch) && BLANK_LOOKING.indexOf(ch) < 0;
  }
  function validName(text) {
    const name = (text || "").trim();
    const chars = Array.from(name);
    if (chars.length < 1 || chars.length > limits.name || !chars.some(visible)
        || /[\p{Cc}\p{Cs}\p{Co}\u2028-\u202e\u2066-\u2069]/u.test(name)) {
      return "";
    }
    let run = 0;
    for (const ch of chars) {
      if (/^[\p{Mn}\p{Me}]$/u.test(ch)) {
        run += 1;
        if (run > limits.marks) {
          return "";
        }
      } else if (!/^\p{Cf}$/u.test(ch)) {
        run = 0; // a joiner between marks still stacks them on the same letter
      }
    }
    return name;
  }

  function screenName() {
    const asked = validName(new URLSearchParams(window.location.search).get("screen"));
    if (asked) {
      return asked;
    }
    let kept = "";
    try {
      kept = validName(window.localStorage.getItem(SCREEN_KEY));
    } catch (e) {
      kept = ""; // storage off: a new name for each visit
    }
    if (!kept) {
      const bytes = new Uint8Array(2);
      window.crypto.getRandomValues(bytes);
      kept = "Screen " + Array.from(bytes, function (b) { return b.toString(16).padStart(2, "0"); }).join("");
      try {
        window.localStorage.setItem(SCREEN_KEY, kept);
      } catch (e) {
        // not kept; this page still has its name
      }
    }
    return kept;
  }

  const screen = screenName();
  hooks.screen = screen;
  let lastHello = ""; // what the open socket was told last ("" = nothing yet)

  function hello() {
    return {
      screen: screen,
      version: body.dataset.version || "",
      sound: muted ? "off" : (hooks.soundBlocked ? "blocked" : "on"),
      width: Math.round(window.innerWidth),
      height: Math.round(window.innerHeight),
    };
  }

  // Tell the server who this is, when the socket is new or something it was told changed.
  function sayHello() {
    const feed = hooks.feed;
    if (!feed) {
      return; // not connected yet (the sound's first state): the first open says hello
    }
    const text = JSON.stringify(hello());
    if (text === lastHello) {
      return;
    }
    if (feed.send({ hello: hello() })) {
      lastHello = text;
      hooks.hellos = (hooks.hellos || 0) + 1;
    }
  }

  let resizeTimer = null;
  window.addEventListener("resize", function () {
    window.clearTimeout(resizeTimer);
    resizeTimer = window.setTimeout(sayHello, RESIZE_WAIT_MS);
  });

  // "identify": the screen's name big over the page for a few seconds (people's text: textContent).
  const identifyEl = document.getElementById("identify");
  let identifyTimer = null;
  function identify() {
    identifyEl.textContent = screen;
    identifyEl.hidden = false;
    hooks.identified = (hooks.identified || 0) + 1;
    window.clearTimeout(identifyTimer);
    identifyTimer = window.setTimeout(function () {
      identifyEl.hidden = true;
    }, IDENTIFY_MS);
  }

  function onMessage(msg) {
    if (msg.command === "reload") {
      hooks.feed.reload(); // once the server answers with the page, as for a new version
    } else if (msg.command === "identify") {
      identify();
    }
  }

  // ---- the live feed (static/feed.js) ------------------------------------------------
  // Only a press sounds the horn; the state on (re)connect, an undo or a set do not.
  // The round's top 3 under the count, once a press of the round has a name (the server
  // leaves "leaders" out with --leaderboard=off). Names are people's text: textContent only.
  const leadersEl = document.getElementById("leaders");
  function fillLeaders(list, leaders) {
    const top = Array.isArray(leaders) ? leaders.slice(0, 3) : [];
    list.textContent = "";
    top.forEach(function (leader, i) {
      list.appendChild(window.ButtonFeed.leaderRow(leader, i + 1));
    });
    return top.length;
  }
  function showLeaders(leaders) {
    const shown = fillLeaders(leadersEl, leaders);
    leadersEl.hidden = shown === 0;
    body.classList.toggle("has-leaders", shown > 0);
  }

  // The round's recap, from the press that reached the goal until the next press: how long
  // it took against the usual, the presses, the top 3 and the last note (people's text: textContent).
  const recapEl = document.getElementById("recap");
  const duration = window.ButtonFeed.duration;
  function showRecap(recap) {
    if (!recap || count !== 0) {
      recapEl.hidden = true;
      body.classList.remove("has-recap");
      return;
    }
    document.getElementById("recap-took").textContent = t("countdown.done_in", { time: duration(recap.took) });
    document.getElementById("recap-presses").textContent = tn("countdown.presses", recap.presses);
    document.getElementById("recap-usual").textContent = typeof recap.usual === "number"
      ? t(recap.took <= recap.usual ? "countdown.faster" : "countdown.usually", { time: duration(recap.usual) })
      : t("countdown.first_round");
    fillLeaders(document.getElementById("recap-leaders"), recap.leaders);
    const noteEl2 = document.getElementById("recap-note");
    noteEl2.textContent = recap.note ? t("countdown.last_note", { note: recap.note }) : "";
    noteEl2.hidden = !recap.note;
    recapEl.hidden = false;
    body.classList.add("has-recap");
    hooks.recaps = (hooks.recaps || 0) + 1;
  }

  function onState(msg) {
    if ("night" in msg) {
      nightHours = typeof msg.night === "string" ? msg.night : "";
    }
    tvCare();
    render(msg, msg.event !== "state");
    if ("leaders" in msg) {
      showLeaders(msg.leaders);
    }
    showRecap(msg.count === 0 ? msg.recap : null);
    if (msg.event === "press") {
      const note = typeof msg.note === "string" ? msg.note.trim() : "";
      const device = typeof msg.device === "string" ? msg.device.trim() : "";
      const by = typeof msg.by === "string" && msg.by.trim() ? msg.by.trim() : device; // "Lobby button"
      if (note || by) {
        showNote(by && note ? by + " · " + note : by || note); // "Ana · Acme Corp"
      }
      horn();
    }
  }

  render({ count: count, goal: goal }, false);
  tvCare();
  window.setInterval(tvCare, 30000);
  hooks.feed = window.ButtonFeed.connect({
    onState: onState,
    onBeat: tvCare,
    onMessage: onMessage,
    onOpen: function () {
      lastHello = ""; // a new socket knows nothing yet
      sayHello();
    },
  });
})();
