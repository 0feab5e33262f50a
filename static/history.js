// The Button: the history page. The current round's pace against the goal, presses per day,
// past rounds and the latest presses, drawn as SVG by the small functions below (no library).
// Data comes from /api/rounds and /api/history on load and again after each feed message.
"use strict";

(function () {
  const body = document.body;
  const $ = function (id) { return document.getElementById(id); };
  const SVG = "http://www.w3.org/2000/svg";
  const PAGE = JSON.parse(body.dataset.limits).history; // presses per /api/history request: the most it gives
  const MAX_PAGES = 10; // at most this many pages of presses read on load
  const RECENT = 100; // presses read on each refresh, merged into what is known
  const DAYS = 30;
  const LATEST = 25;
  const MINUTE = 60000;
  const HOUR = 60 * MINUTE;
  const DAY = 24 * HOUR;
  const t = window.ButtonFeed.t; // the page's words and language (static/feed.js)
  const tn = window.ButtonFeed.tn;
  const LANG = window.ButtonFeed.lang;
  const num = window.ButtonFeed.number;

  // feed: the live feed's own story (static/feed.js).
  const hooks = { loads: 0, fullLoads: 0, draws: 0, feed: null };
  window.theHistory = hooks;

  let rounds = []; // newest (the current round) first
  let presses = []; // newest first: every press since `since`, or the latest MAX_PAGES pages
  let complete = true; // false when presses stop short of the 30 days or the current round
  let state = null; // the latest state from the feed
  let boards = { round: null, all: null }; // /api/leaderboard of the round and of all time

  // ---- reading the API ---------------------------------------------------------------
  function getJson(path) {
    return window.fetch(path, { cache: "no-store", credentials: "omit" }).then(function (res) {
      return res.json().catch(function () { return {}; }).then(function (json) {
        if (!res.ok) {
          throw new Error((json && json.error) || t("page.server_answered", { status: String(res.status) }));
        }
        return json;
      });
    });
  }

  function startOfDay(t) {
    const d = new Date(t);
    d.setHours(0, 0, 0, 0);
    return d.getTime();
  }

  // How far back the charts need presses: 30 days, or the start of the current round.
  function since() {
    const days = startOfDay(Date.now()) - (DAYS - 1) * DAY;
    const round = rounds[0];
    return round ? Math.min(days, Date.parse(round.started)) : days;
  }

  async function fullLoad() {
    rounds = (await getJson("/api/rounds")).rounds || [];
    const from = since();
    let all = [];
    let before = null;
    complete = false;
    for (let page = 0; page < MAX_PAGES; page++) {
      const got = (await getJson("/api/history?limit=" + PAGE + (before ? "&before=" + before : ""))).presses || [];
      all = all.concat(got);
      if (got.length < PAGE || Date.parse(got[got.length - 1].at) < from) {
        complete = true;
        break;
      }
      before = got[got.length - 1].id;
    }
    presses = all;
    await loadBoards();
    hooks.fullLoads += 1;
  }

  async function loadBoards() {
    const got = await Promise.all([getJson("/api/leaderboard?period=round"), getJson("/api/leaderboard?period=all")]);
    boards = { round: got[0], all: got[1] };
  }

  // After a change: the rounds again and the latest presses merged in (an undo changes a
  // recent press), or everything again when more presses came than one read covers.
  async function refresh() {
    const got = await Promise.all([getJson("/api/rounds"), getJson("/api/history?limit=" + RECENT)]);
    const recent = got[1].presses || [];
    const oldest = recent.length ? recent[recent.length - 1].id : null;
    const known = presses.length ? presses[0].id : null;
    if (recent.length === RECENT && known !== null && oldest > known + 1) {
      await fullLoad();
      return;
    }
    rounds = got[0].rounds || [];
    await loadBoards();
    presses = oldest === null ? [] : recent.concat(presses.filter(function (p) { return p.id < oldest; }));
    const from = since();
    const keep = presses.filter(function (p) { return Date.parse(p.at) >= from; });
    if (keep.length < presses.length) {
      presses = keep; // older than any chart shows
      complete = true;
    }
  }

  let loading = false;
  let again = false;
  let loadedOnce = false;
  function load() {
    if (loading) {
      again = true;
      return;
    }
    loading = true;
    (loadedOnce ? refresh() : fullLoad()).then(function () {
      loadedOnce = true;
      hooks.loads += 1;
      $("load-error").hidden = true;
      draw();
      body.dataset.loaded = "yes";
    }, function (e) {
      $("load-error").textContent = t("history.cannot_load", { reason: e.message });
      $("load-error").hidden = false;
    }).then(function () {
      loading = false;
      if (again) {
        again = false;
        load();
      }
    });
  }

  // ---- small SVG helpers ---------------------------------------------------------------
  function el(name, attrs, parent, text) {
    const node = document.createElementNS(SVG, name);
    Object.keys(attrs || {}).forEach(function (key) {
      node.setAttribute(key, String(attrs[key]));
    });
    if (text !== undefined) {
      node.textContent = text; // data is text, never markup
    }
    if (parent) {
      parent.appendChild(node);
    }
    return node;
  }

  function canvas(box, label) {
    box.textContent = "";
    const w = Math.max(200, box.clientWidth);
    const h = Math.max(140, box.clientHeight);
    const svg = el("svg", { viewBox: "0 0 " + w + " " + h, width: w, height: h, role: "img", "aria-label": label }, box);
    return { svg: svg, w: w, h: h };
  }

  function fontSize() {
    return 0.85 * parseFloat(window.getComputedStyle(document.documentElement).fontSize || "16");
  }

  // A round number near `rough`: 1, 2 or 5 times a power of ten.
  function niceStep(rough) {
    if (!(rough > 0)) {
      return 1;
    }
    const power = Math.pow(10, Math.floor(Math.log10(rough)));
    const unit = rough / power;
    return power * (unit <= 1 ? 1 : unit <= 2 ? 2 : unit <= 5 ? 5 : 10);
  }

  // A length of time, in the page's language: to the second under a minute, else to the minute.
  function span(ms) {
    ms = Math.max(0, ms);
    return window.ButtonFeed.duration(ms < MINUTE ? ms / 1000 : Math.round(ms / MINUTE) * 60);
  }

  function dayLabel(at) {
    return new Date(at).toLocaleDateString(LANG, { weekday: "short", month: "short", day: "numeric" });
  }

  function shortDate(at) {
    return new Date(at).toLocaleDateString(LANG, { month: "short", day: "numeric" });
  }

  function clock(at) {
    return new Date(at).toLocaleTimeString(LANG, { hour: "2-digit", minute: "2-digit" });
  }

  // Text with {name} places filled by nodes (e.g. a <strong> number) into el; the rest is text.
  function fillNodes(el, text, nodes) {
    el.textContent = "";
    text.split(/(\{[a-z_]+\})/).forEach(function (part) {
      const name = part.charAt(0) === "{" ? part.slice(1, -1) : null;
      el.appendChild(name && nodes[name] ? nodes[name] : document.createTextNode(part));
    });
  }

  function median(values) {
    const sorted = values.slice().sort(function (a, b) { return a - b; });
    const mid = Math.floor(sorted.length / 2);
    return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  }

  // ---- the current round's pace -----------------------------------------------------------
  function drawPace() {
    const box = $("pace-chart");
    const summary = $("pace-summary");
    const round = rounds[0];
    if (!round) {
      box.textContent = "";
      summary.textContent = t("history.no_rounds");
      $("pace-legend-line").hidden = true;
      return;
    }
    const goal = round.goal;
    const start = Date.parse(round.started);
    const now = round.ended ? Date.parse(round.ended) : Math.max(Date.now(), start + 1000);
    const clamp = function (v) { return Math.max(0, Math.min(goal, v)); };
    const steps = presses.filter(function (p) {
      const t = Date.parse(p.at);
      return !p.undone && t >= start && t <= now;
    }).reverse();
    // Done = goal - count, as the countdown shows it; a wrap (0 -> goal) starts from nothing.
    const first = steps[0];
    const done0 = first ? (first.count_before === 0 ? 0 : clamp(goal - first.count_before)) : null;
    let doneNow = steps.length ? clamp(goal - steps[steps.length - 1].count_after) : null;
    if (!round.ended && state && state.goal === goal) {
      doneNow = clamp(goal - state.count);
    }
    const startDone = done0 !== null ? done0 : (doneNow !== null ? doneNow : 0);
    if (doneNow === null) {
      doneNow = startDone;
    }

    // On pace: the median time per press of past rounds that reached their goal; without
    // any, the rate of this round so far.
    const reached = rounds.slice(1).filter(function (r) { return r.reached && r.ended && r.goal > 0; }).slice(0, 10);
    let paceEnd = null;
    let paceText = "";
    if (reached.length) {
      const perPress = median(reached.map(function (r) { return (Date.parse(r.ended) - Date.parse(r.started)) / r.goal; }));
      paceEnd = start + perPress * (goal - startDone);
      paceText = tn("history.usual_pace", reached.length);
    } else if (doneNow > startDone && now > start) {
      paceEnd = start + (goal - startDone) * (now - start) / (doneNow - startDone);
      paceText = t("history.rate_so_far");
    }

    const strong = document.createElement("strong");
    strong.textContent = window.ButtonFeed.number(doneNow);
    const values = { goal: goal, time: span(now - start), start: dayLabel(start) + " " + clock(start) };
    const words = [round.ended ? (round.reached ? t("history.done_in_reached", values) : t("history.done_in", values))
      : t("history.done_since", values)];
    if (paceEnd !== null && !round.ended && doneNow < goal) {
      const expected = startDone + (goal - startDone) * Math.min(1, (now - start) / Math.max(1, paceEnd - start));
      const ahead = Math.round(doneNow - expected);
      if (reached.length) {
        words.push(ahead > 0 ? t("history.ahead", { n: ahead }) : ahead < 0 ? t("history.behind", { n: -ahead }) : t("history.on_usual"));
      }
      words.push(t("history.goal_comes", { when: paceEnd - Date.now() < DAY ? clock(paceEnd) : dayLabel(paceEnd) }));
    } else if (doneNow >= goal && !round.ended) {
      words.push(t("history.reached_now"));
    }
    fillNodes(summary, words.join(" · "), { done: strong });
    $("pace-legend-line").hidden = paceEnd === null;
    $("pace-legend-text").textContent = paceText || t("history.on_pace");

    const c = canvas(box, t("history.pace_chart"));
    const fs = fontSize();
    const m = { left: fs * 2.8, right: fs * 2.2, top: fs * 1.4, bottom: fs * 2.4 };
    const elapsed = now - start;
    let t1 = now;
    if (paceEnd !== null) {
      t1 = Math.max(now, Math.min(paceEnd, start + 10 * elapsed));
    }
    const x = function (t) { return m.left + (c.w - m.left - m.right) * (t - start) / Math.max(1, t1 - start); };
    const y = function (v) { return c.h - m.bottom - (c.h - m.top - m.bottom) * v / goal; };

    // Grid and axes.
    const yStep = Math.max(1, niceStep(goal / Math.max(2, Math.floor((c.h - m.top - m.bottom) / (fs * 2.2)))));
    for (let v = 0; v <= goal; v += yStep) {
      el("line", { class: v === 0 ? "axis" : "grid", x1: m.left, x2: c.w - m.right, y1: y(v), y2: y(v) }, c.svg);
      if (goal - v >= yStep * 0.4 || v === goal) {
        el("text", { x: m.left - fs * 0.5, y: y(v) + fs * 0.35, "text-anchor": "end", "font-size": fs }, c.svg, num(v));
      }
    }
    if (goal % yStep !== 0) {
      el("text", { x: m.left - fs * 0.5, y: y(goal) + fs * 0.35, "text-anchor": "end", "font-size": fs }, c.svg, num(goal));
    }
    el("line", { class: "goal-line", x1: m.left, x2: c.w - m.right, y1: y(goal), y2: y(goal) }, c.svg);
    timeAxis(c, start, t1, x, c.h - m.bottom, fs, m);

    // The pace line, cut at the chart's right edge.
    if (paceEnd !== null) {
      const tEnd = Math.min(paceEnd, t1);
      const vEnd = startDone + (goal - startDone) * (tEnd - start) / Math.max(1, paceEnd - start);
      el("path", { class: "pace-line", d: "M" + x(start) + "," + y(startDone) + " L" + x(tEnd) + "," + y(vEnd) }, c.svg);
    }

    // Presses so far: a step line, one step per press.
    let d = "M" + x(start).toFixed(1) + "," + y(startDone).toFixed(1);
    steps.forEach(function (p) {
      d += " H" + x(Date.parse(p.at)).toFixed(1) + " V" + y(clamp(goal - p.count_after)).toFixed(1);
    });
    d += " H" + x(now).toFixed(1) + " V" + y(doneNow).toFixed(1);
    el("path", { class: "done-area", d: d + " V" + y(0) + " H" + x(start) + " Z" }, c.svg);
    const line = el("path", { class: "done-line", d: d, "data-steps": steps.length }, c.svg);
    line.id = "pace-steps";
    el("circle", { class: "now", cx: x(now), cy: y(doneNow), r: fs * 0.4 }, c.svg);
    const right = x(now) > c.w - m.right - fs * 3;
    el("text", { class: "label-strong", x: x(now) + (right ? -fs * 0.7 : fs * 0.7), y: y(doneNow) - fs * 0.5,
      "text-anchor": right ? "end" : "start", "font-size": fs * 1.1 }, c.svg, num(doneNow));
  }

  // Time ticks at round local times (every 5 min, hour, day, ...), as many as fit.
  function timeAxis(c, t0, t1, x, yAxis, fs, m) {
    const steps = [MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR,
      DAY, 2 * DAY, 3 * DAY, 7 * DAY, 14 * DAY, 30 * DAY, 91 * DAY, 365 * DAY];
    const fit = Math.max(3, Math.floor((c.w - m.left - m.right) / (fs * 6)));
    const step = steps.find(function (s) { return (t1 - t0) / s <= fit; }) || steps[steps.length - 1];
    const offset = new Date(t0).getTimezoneOffset() * MINUTE; // local midnight, not UTC's
    let t = Math.ceil((t0 - offset) / step) * step + offset;
    const long = t1 - t0 > 36 * HOUR;
    for (; t <= t1; t += step) {
      const tx = x(t);
      el("line", { class: "grid", x1: tx, x2: tx, y1: m.top, y2: yAxis }, c.svg);
      // Over days: midnights are dates, the ticks between them times of day.
      const midnight = new Date(t).getHours() === 0 && new Date(t).getMinutes() === 0;
      const text = long && (step >= DAY || midnight)
        ? shortDate(t) : clock(t);
      el("text", { x: tx, y: yAxis + fs * 1.5, "text-anchor": "middle", "font-size": fs }, c.svg, text);
    }
  }

  // ---- presses per day ----------------------------------------------------------------------
  function drawDays() {
    const today = startOfDay(Date.now());
    const days = [];
    for (let i = DAYS - 1; i >= 0; i--) {
      const d = new Date(today);
      d.setDate(d.getDate() - i); // calendar days: right across a daylight-saving change
      days.push({ start: d.getTime(), count: 0 });
    }
    const index = {};
    days.forEach(function (d, i) { index[d.start] = i; });
    let total = 0;
    presses.forEach(function (p) {
      if (p.undone) {
        return;
      }
      const i = index[startOfDay(Date.parse(p.at))];
      if (i !== undefined) {
        days[i].count += 1;
        total += 1;
      }
    });
    const busiest = days.reduce(function (a, b) { return b.count > a.count ? b : a; }, days[0]);
    $("days-summary").textContent = total
      ? [tn("history.days_total", total), t("history.busiest", { day: dayLabel(busiest.start), n: busiest.count })]
        .concat(complete ? [] : [t("history.from_latest", { n: presses.length })]).join(" · ")
      : t("history.no_days");

    const c = canvas($("days-chart"), t("history.days_chart"));
    const fs = fontSize();
    const m = { left: fs * 2.4, right: fs * 0.5, top: fs * 1.6, bottom: fs * 2.2 };
    const top = Math.max(4, busiest.count);
    const yStep = niceStep(top / Math.max(2, Math.floor((c.h - m.top - m.bottom) / (fs * 2.2))));
    const yMax = Math.ceil(top / yStep) * yStep;
    const y = function (v) { return c.h - m.bottom - (c.h - m.top - m.bottom) * v / yMax; };
    for (let v = 0; v <= yMax; v += yStep) {
      el("line", { class: v === 0 ? "axis" : "grid", x1: m.left, x2: c.w - m.right, y1: y(v), y2: y(v) }, c.svg);
      el("text", { x: m.left - fs * 0.5, y: y(v) + fs * 0.35, "text-anchor": "end", "font-size": fs }, c.svg, num(v));
    }
    const slot = (c.w - m.left - m.right) / DAYS;
    const every = Math.max(1, Math.ceil(fs * 3.2 / slot));
    days.forEach(function (d, i) {
      const bx = m.left + i * slot + slot * 0.15;
      const isToday = i === DAYS - 1;
      const h = y(0) - y(d.count);
      const bar = el("rect", { class: "bar" + (isToday ? " today" : ""), x: bx, y: y(d.count), width: slot * 0.7,
        height: Math.max(0, h), rx: Math.min(3, slot * 0.15), "data-day": new Date(d.start).toDateString(), "data-count": d.count }, c.svg);
      el("title", {}, bar, tn("history.day_bar", d.count, { day: dayLabel(d.start) }));
      if (d.count > 0 && slot >= fs * 1.2) {
        el("text", { class: "value", x: bx + slot * 0.35, y: y(d.count) - fs * 0.35, "text-anchor": "middle",
          "font-size": fs * 0.85 }, c.svg, num(d.count));
      }
      if ((DAYS - 1 - i) % every === 0) {
        const date = new Date(d.start);
        const text = isToday ? t("history.today") : date.getDate() === 1 || i < every
          ? shortDate(d.start) : date.toLocaleDateString(LANG, { day: "numeric" });
        el("text", { class: isToday ? "label-strong" : "", x: bx + slot * 0.35, y: y(0) + fs * 1.5, "text-anchor": "middle",
          "font-size": fs }, c.svg, text);
      }
    });
  }

  // ---- past rounds -------------------------------------------------------------------------
  function drawRounds() {
    const box = $("rounds-chart");
    const past = rounds.filter(function (r) { return r.ended; });
    const reached = past.filter(function (r) { return r.reached; });
    if (!past.length) {
      box.textContent = "";
      $("rounds-summary").textContent = t("history.no_finished");
      return;
    }
    const took = function (r) { return Date.parse(r.ended) - Date.parse(r.started); };
    $("rounds-summary").textContent = [tn("history.finished", past.length), tn("history.reached_goal", reached.length)]
      .concat(reached.length ? [t("history.median", { time: span(median(reached.map(took))) })] : []).join(" · ");

    const c = canvas(box, t("history.rounds_chart"));
    const fs = fontSize();
    const rowH = Math.max(fs * 1.9, Math.min(fs * 3, c.h / Math.min(past.length, 6)));
    const rows = past.slice(0, Math.max(1, Math.floor(c.h / rowH)));
    const labelW = fs * 5.2;
    const textW = fs * 8.5;
    const barMax = Math.max(fs * 2, c.w - labelW - textW);
    const longest = Math.max.apply(null, rows.map(took).concat([1]));
    rows.forEach(function (r, i) {
      const cy = i * rowH + rowH / 2;
      const w = Math.max(3, barMax * took(r) / longest);
      el("text", { x: labelW - fs * 0.6, y: cy + fs * 0.35, "text-anchor": "end", "font-size": fs }, c.svg,
        shortDate(Date.parse(r.started)));
      const bar = el("rect", { class: "bar " + (r.reached ? "reached" : "missed"), x: labelW, y: cy - rowH * 0.3, width: w,
        height: rowH * 0.6, rx: 3, "data-took": took(r), "data-reached": r.reached ? "yes" : "no" }, c.svg);
      el("title", {}, bar, dayLabel(Date.parse(r.started)) + " " + clock(Date.parse(r.started)) + " → " +
        dayLabel(Date.parse(r.ended)) + " " + clock(Date.parse(r.ended)));
      el("text", { class: r.reached ? "value" : "", x: labelW + w + fs * 0.5, y: cy + fs * 0.35, "font-size": fs }, c.svg,
        span(took(r)) + " · " + num(r.presses) + "/" + num(r.goal));
    });
  }

  // ---- the latest presses -----------------------------------------------------------------------
  function drawLatest() {
    const rows = $("latest-rows");
    rows.textContent = "";
    const shown = presses.slice(0, LATEST);
    shown.forEach(function (p) {
      const t = Date.parse(p.at);
      const when = isNaN(t) ? p.at : (startOfDay(t) === startOfDay(Date.now()) ? "" : dayLabel(t) + " ") + clock(t);
      rows.appendChild(window.ButtonFeed.pressRow(p, when));
    });
    $("latest-empty").hidden = shown.length > 0;
  }

  // ---- the leaders: this round and all time (names are people's text: textContent) -----------
  function drawBoard(listId, emptyId, board) {
    const list = $(listId);
    list.textContent = "";
    const leaders = (board && board.leaders) || [];
    leaders.slice(0, 10).forEach(function (leader) {
      list.appendChild(window.ButtonFeed.leaderRow(leader)); // ranked by the list's CSS counter
    });
    $(emptyId).hidden = leaders.length > 0;
  }
  function drawLeaders() {
    drawBoard("leaders-round", "leaders-round-empty", boards.round);
    drawBoard("leaders-all", "leaders-all-empty", boards.all);
  }

  function draw() {
    drawLeaders();
    drawPace();
    drawDays();
    drawRounds();
    drawLatest();
    hooks.draws += 1;
  }

  let resizeFrame = 0;
  window.addEventListener("resize", function () {
    window.cancelAnimationFrame(resizeFrame);
    resizeFrame = window.requestAnimationFrame(function () {
      if (loadedOnce) {
        draw();
      }
    });
  });

  // ---- the live feed (static/feed.js) ----------------------------------------------------------
  function onState(msg) {
    state = msg;
    if (typeof msg.title === "string" && msg.title) {
      $("heading").textContent = window.ButtonFeed.heading(msg);
      document.title = t("page.history") + " · " + window.ButtonFeed.heading(msg);
    }
    load();
  }

  load();
  hooks.feed = window.ButtonFeed.connect({ onState: onState, words: { notLive: t("history.not_live") } });
  // The pace chart's "now" moves on with the clock, even when nobody presses.
  window.setInterval(function () {
    if (loadedOnce) {
      drawPace();
    }
  }, MINUTE);
})();
