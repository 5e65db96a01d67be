// montage studio: the script beside the film. Plain JavaScript, no build step.
// Everything shown is set with textContent or attributes (never innerHTML), so a sentence
// such as <script>alert(1)</script> shows as text.
"use strict";

const TOKEN = document.querySelector('meta[name="montage-token"]').content;
const $ = (id) => document.getElementById(id);
const editor = $("editor"), player = $("player"), strip = $("strip");

let snap = null;          // the current cut (GET /api/project)
let selected = null;      // selected shot id
let dirty = false;        // the editor holds text not yet saved
let lastDone = 0;         // the last job whose result the page has loaded
let waiting = 0;          // the job the page waits for
let keepShot = null;      // the shot under the playhead when a new film is asked for
let errorLine = null;
let savedText = null;     // the text of the last save, until its recut is done
let playAfter = false;    // play the new film once it is in (after a save)
let savedAt = null;       // performance.now() of the last save click (the page measures save-to-play)

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function clock(t) {
  const m = Math.floor(t / 60), s = t - 60 * m;
  return `${m}:${s.toFixed(1).padStart(4, "0")}`;
}

async function api(path, body) {
  const opts = body === undefined ? {} : {
    method: "POST", body: JSON.stringify(body),
    headers: { "Content-Type": "application/json", "X-Montage-Token": TOKEN },
  };
  const res = await fetch(path, { credentials: "same-origin", cache: "no-store", ...opts });
  let data = null;
  try { data = await res.json(); } catch (e) { data = { error: `${res.status} ${res.statusText}` }; }
  if (!res.ok) throw Object.assign(new Error(data.error || res.statusText), { hint: data.hint || "" });
  return data;
}

function showAlert(title, text, hint) {
  $("alert").hidden = !title;
  $("alert-title").textContent = title || "";
  $("alert-text").textContent = text || "";
  $("alert-hint").textContent = hint || "";
}

// -- the script ---------------------------------------------------------------------------
function caretOffset() {
  const sel = window.getSelection();
  if (!sel.rangeCount || !editor.contains(sel.anchorNode)) return null;
  const range = sel.getRangeAt(0).cloneRange();
  range.selectNodeContents(editor);
  range.setEnd(sel.anchorNode, sel.anchorOffset);
  return range.toString().length;
}

function setCaret(offset) {
  if (offset === null) return;
  const walker = document.createTreeWalker(editor, NodeFilter.SHOW_TEXT);
  let left = offset, node;
  while ((node = walker.nextNode())) {
    if (left <= node.length) {
      const r = document.createRange();
      r.setStart(node, left); r.collapse(true);
      const sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(r);
      return;
    }
    left -= node.length;
  }
}

function renderScript() {
  const focused = document.activeElement === editor;
  const caret = focused ? caretOffset() : null;
  editor.replaceChildren();
  const text = snap.script;
  const spans = snap.shots.filter((s) => s.span).sort((a, b) => a.span[0] - b.span[0]);
  let pos = 0, scene = -1;
  for (const s of spans) {
    if (s.span[0] > pos) editor.append(document.createTextNode(text.slice(pos, s.span[0])));
    const cls = ["shot", s.source];
    if (s.scene !== scene) { cls.push("scene-start"); scene = s.scene; }
    if (s.id === selected) cls.push("selected");
    const span = el("span", { class: cls.join(" "), "data-id": s.id, "data-scene": String(s.scene + 1),
      title: `shot ${s.n}: ${s.source === "placeholder" ? "title card" : s.clip} (${s.seconds.toFixed(1)} s)` },
      text.slice(s.span[0], s.span[1]));
    editor.append(span);
    pos = s.span[1];
  }
  if (pos < text.length) editor.append(document.createTextNode(text.slice(pos)));
  editor.setAttribute("contenteditable", "plaintext-only");
  if (focused) { editor.focus(); setCaret(caret); }
  setDirty(false);
}

function setDirty(value) {
  dirty = value;
  $("dirty").hidden = !value;
}

function scriptText() { return editor.textContent; }

async function save() {
  if (!snap) return;
  savedAt = performance.now();
  const text = scriptText();
  $("script-error").hidden = true;
  savedText = text;
  try {
    const { job } = await api("/api/script", { text });
    startWaiting(job, "save");
  } catch (e) { scriptError(e.message, e.hint, null); }
}

function scriptError(message, hint, line) {
  const box = $("script-error");
  box.textContent = message + (hint ? `\n${hint}` : "");
  box.hidden = false;
  errorLine = line;
}

editor.addEventListener("input", () => setDirty(true));
editor.addEventListener("click", (ev) => {
  const span = ev.target.closest(".shot");
  if (span) select(span.dataset.id, true);
});
document.addEventListener("keydown", (ev) => {
  if ((ev.ctrlKey || ev.metaKey) && ev.key.toLowerCase() === "s") { ev.preventDefault(); save(); }
});
$("save").addEventListener("click", save);

// -- the film and the strip ------------------------------------------------------------------
function shotAt(t) {
  if (!snap || !snap.shots.length) return null;
  let lo = 0, hi = snap.shots.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (snap.shots[mid].start <= t + 1e-3) lo = mid; else hi = mid - 1;
  }
  return snap.shots[lo];
}

function renderStrip() {
  strip.replaceChildren();
  const total = Math.max(snap.seconds, 0.001);
  const pxPerSecond = Math.max((strip.clientWidth - 16) / total, 14);
  let scene = -1;
  for (const s of snap.shots) {
    const cls = ["clip", s.source];
    if (s.scene !== scene) { if (scene >= 0) cls.push("scene-start"); scene = s.scene; }
    const label = `${s.n} ${s.source === "placeholder" ? "card" : s.source === "generated" ? (s.fill && s.fill.kind === "stand-in" ? "stand-in" : "gen") : "lib"}`;
    const node = el("div", { class: cls.join(" "), "data-id": s.id, role: "button", tabindex: "0",
      title: `shot ${s.n}: ${s.text}${s.bends.length ? "\nbends: " + s.bends.join(", ") : ""}`,
      onclick: () => select(s.id, true) });
    node.style.width = `${Math.max(6, s.seconds * pxPerSecond).toFixed(1)}px`;  // CSSOM: allowed by the CSP
    if (s.media) node.append(el("img", { src: `/media/thumb/${s.media}.jpg`, loading: "lazy", alt: "" }));
    else node.append(el("div", { class: "cardtext", text: s.text }));
    node.append(el("span", { class: "label", text: label }));
    if (s.bends.length) node.append(el("span", { class: "bend", text: "!" }));
    strip.append(node);
  }
}

function mark(id, cls, scroll) {
  for (const n of document.querySelectorAll(`.${cls}`)) n.classList.remove(cls);
  if (!id) return;
  for (const n of document.querySelectorAll(`[data-id="${CSS.escape(id)}"]`)) {
    n.classList.add(cls);
    if (scroll && n.parentElement === strip) n.scrollIntoView({ block: "nearest", inline: "nearest" });
    if (scroll && n.parentElement === editor && document.activeElement !== editor)
      n.scrollIntoView({ block: "nearest" });
  }
}

player.addEventListener("timeupdate", () => {
  const s = shotAt(player.currentTime);
  const id = s ? s.id : null;
  if (player.dataset.current !== id) { player.dataset.current = id || ""; mark(id, "current", true); }
});
player.addEventListener("playing", () => {
  // the page's own measure of save-to-play: from the save click to the new film playing
  if (savedAt !== null && player.dataset.film === snap.film) {
    document.body.dataset.saveToPlayMs = String(Math.round(performance.now() - savedAt));
    document.body.dataset.playingCut = String(snap.cut);
    savedAt = null;
  }
});

function loadFilm() {
  if (!snap.film) { player.hidden = true; $("empty").hidden = false; return; }
  player.hidden = false; $("empty").hidden = true;
  if (player.dataset.film !== snap.film) {
    // the new film opens where the kept shot starts (a media fragment: no load from the top
    // and seek after), and plays at once after a save
    const s = keepShot ? snap.shots.find((x) => x.id === keepShot) : null;
    const from = s ? s.start + 0.01 : 0;
    keepShot = null;
    player.dataset.film = snap.film;
    player.dataset.from = String(s ? s.start : 0);
    player.setAttribute("src", from > 0 ? `${snap.film}#t=${from.toFixed(3)}` : snap.film);
    player.load();
    if (playAfter) {
      playAfter = false;
      player.play().catch(() => {});  // a browser that refuses autoplay leaves it paused
    }
  }
}

// -- the selected shot -------------------------------------------------------------------------
async function select(id, seek) {
  selected = id;
  mark(id, "selected", true);
  const s = snap.shots.find((x) => x.id === id);
  if (!s) return;
  if (seek && snap.film) player.currentTime = s.start + 0.01;
  let full;
  try { full = await api(`/api/shot/${encodeURIComponent(id)}`); }
  catch (e) { showAlert("Could not load the shot", e.message, e.hint); return; }
  if (selected === id) renderShot(full);
}

function act(path, body) {
  return async () => {
    try {
      const { job } = await api(path, body);
      startWaiting(job, path);
    } catch (e) { showAlert("Not done", e.message, e.hint); }
  };
}

function renderShot(s) {
  const box = $("shot");
  box.dataset.id = s.id;
  box.dataset.score = s.score.toFixed(3);
  box.dataset.file = s.file || "";
  const kind = s.source === "placeholder" ? "title card"
    : s.source === "generated" ? (s.fill && s.fill.kind === "stand-in" ? "stand-in (composed from library frames and the cast's photos)" : "generated clip")
    : "library clip";
  const f = s.fill;
  const facts = el("div", { class: "facts" },
    el("div", { text: `${kind}${s.clip && s.source === "library" ? ": " + s.clip : ""} · starts ${clock(s.start)} · ${s.seconds.toFixed(2)} s${s.confidence === null ? " · score " + s.score.toFixed(3) : ""}` }),
    s.confidence_text ? el("div", { class: "confidence", text: s.confidence_text }) : null,
    f ? el("div", { class: "fill", text: `measured ${Number(f.measured).toFixed(3)} for '${f.query}' (${f.backend}, ${f.made_from}); ${f.fills}; runner-up fill: ${f.runner_up}; best footage: ${f.best_footage}` }) : null,
    s.file ? el("div", { class: "file", text: `file: ${s.file}` }) : null,
    s.reason ? el("div", { text: `why: ${s.reason}` }) : null,
    s.runner_up ? el("div", { text: `runner-up: ${s.runner_up}${s.decided_by ? " (" + s.decided_by + ")" : ""}` }) : null,
    !s.runner_up && s.decided_by ? el("div", { text: s.decided_by }) : null,
    s.bends.length ? el("div", { text: `bends: ${s.bends.join(", ")}` }) : null,
    s.costs.length ? el("div", { class: "muted", text: "terms: " + s.costs.map(([t, v]) => `${t} ${v > 0 ? "+" : ""}${v.toFixed(3)}`).join(", ") }) : null,
    s.pinned ? el("div", { text: `pinned to ${s.pinned}${s.trimmed ? " (trim set by hand)" : ""}` }) : null);
  const actions = el("div", { class: "actions" },
    s.pinned ? el("button", { type: "button", id: "unpin", text: "Unpin", onclick: act("/api/unpin", { shot: s.id }) }) : null,
    el("button", { type: "button", id: "generate", text: "Generate this shot", onclick: act("/api/generate", { shot: s.id }) }),
    s.kind === "video" ? el("button", { type: "button", id: "trim-earlier", text: "◀ trim 0.5 s earlier", onclick: act("/api/trim", { shot: s.id, steps: -1 }) }) : null,
    s.kind === "video" ? el("button", { type: "button", id: "trim-later", text: "trim 0.5 s later ▶", onclick: act("/api/trim", { shot: s.id, steps: 1 }) }) : null,
    s.clip && !s.clip.startsWith("generated:") ? el("button", { type: "button", id: "ban-chosen", text: "Ban this clip", onclick: act("/api/ban", { clip: s.clip }) }) : null);
  const cands = el("div", { class: "cands" });
  for (const c of s.candidates) {
    const pic = el("div", { class: "pic" }, el("img", { src: `/media/thumb/${c.media}.jpg`, loading: "lazy", alt: "" }));
    pic.addEventListener("mouseenter", () => {
      pic.replaceChildren(el("video", { src: `/media/preview/${c.media}.mp4`, muted: true, autoplay: true, loop: true, playsinline: true }));
      pic.firstChild.muted = true;
    });
    pic.addEventListener("mouseleave", () => {
      pic.replaceChildren(el("img", { src: `/media/thumb/${c.media}.jpg`, alt: "" }));
    });
    cands.append(el("div", { class: `cand${c.chosen ? " chosen" : ""}${c.banned ? " banned" : ""}`, "data-clip": c.clip },
      pic,
      el("div", { class: "meta" },
        el("div", { class: "name", title: c.clip, text: c.clip }),
        el("div", { class: "muted", text: `${c.confidence === null ? "score " + c.score.toFixed(3) : c.confidence.toFixed(1) + " sd" + (s.bar !== null && c.confidence < s.bar ? " (under the bar)" : "")} · ${c.kind}${c.kind === "video" ? " " + c.seconds.toFixed(1) + " s" : ""}${c.chosen ? " · in the film" : ""}` }),
        c.used_by ? el("div", { class: "taken", text: `used by shot ${c.used_by.n}` }) : null),
      el("div", { class: "buttons" },
        el("button", { type: "button", class: c.used_by ? "use swap" : "use",
          text: c.chosen ? "In use" : c.used_by ? "Swap" : "Use", disabled: c.chosen || c.banned,
          title: c.used_by ? `use it here; shot ${c.used_by.n} chooses its footage again` : "use this clip for this shot (a pin)",
          onclick: act("/api/pin", { shot: s.id, clip: c.clip }) }),
        c.banned ? el("button", { type: "button", class: "unban", text: "Unban", onclick: act("/api/unban", { clip: c.clip }) })
          : el("button", { type: "button", class: "ban", text: "Ban", onclick: act("/api/ban", { clip: c.clip }) }))));
  }
  box.replaceChildren(
    el("h2", { text: `Shot ${s.n} of ${snap.shots.length}` }),
    el("div", { class: "text", text: s.text }),
    facts, actions,
    el("h2", { text: "Candidates" }),
    s.candidates.length ? cands : el("p", { class: "muted", text: "No library footage matched this sentence." }));
}

// -- history, style ----------------------------------------------------------------------------
function renderHistory() {
  const list = $("cuts");
  list.replaceChildren();
  for (const h of [...snap.history].reverse()) {
    const current = h.cut === snap.cut;
    list.append(el("li", { class: current ? "current" : "" },
      el("div", { text: `cut ${h.cut} · ${h.time}` }),
      el("div", { class: "muted", text: `${h.summary} · ${h.shots} shots · ${h.seconds.toFixed(1)} s` }),
      current ? el("div", { text: "the film now" })
        : el("button", { type: "button", text: "Go back to this cut", "data-cut": String(h.cut), onclick: act("/api/revert", { cut: h.cut }) })));
  }
  const style = $("style");
  style.replaceChildren(...snap.styles.map((n) => el("option", { value: n, text: n, selected: n === snap.style })));
}
$("style").addEventListener("change", (ev) => act("/api/style", { style: ev.target.value })());

function renderSkipped() {
  // the library's files the index did not take, with why (text only: names are the user's)
  const skipped = snap.skipped || [];
  $("skipped").hidden = skipped.length === 0;
  const counts = {};
  for (const f of skipped) counts[f.why] = (counts[f.why] || 0) + 1;
  $("skipped-title").textContent = `${skipped.length} library file${skipped.length === 1 ? "" : "s"} not used (` +
    Object.entries(counts).map(([why, n]) => `${n} ${why}`).join(", ") + ")";
  $("skipped-list").replaceChildren(...skipped.map((f) => el("li", { title: f.detail, "data-why": f.why },
    el("span", { class: "path", text: f.path }), el("span", { class: "muted", text: ` · ${f.why}${f.detail ? ": " + f.detail : ""}` }))));
}

// -- settings ------------------------------------------------------------------------------------
const NUMBERS = new Set(["top", "width", "height", "seed"]);
let settingsShown = null;  // the values the form was built from (JSON text of each)

function renderSettings() {
  const notes = $("settings-notes");
  notes.hidden = !snap.settings_notes.length;
  notes.replaceChildren(...snap.settings_notes.map((t) => el("div", { text: t })));
  const shown = JSON.stringify(snap.settings);
  if (shown === settingsShown) return;  // keep what the user is typing
  settingsShown = shown;
  const form = $("settings-form");
  form.replaceChildren();
  for (const item of snap.settings) {
    const label = el("label", { "data-name": item.name }, el("span", { text: item.name, title: item.name }));
    if (!item.editable) {
      label.append(el("div", { class: "fixed", text: item.shown || "(once cut)", title: item.shown }));
    } else if (item.name === "narrate") {
      label.append(el("input", { type: "checkbox", name: item.name, checked: item.value === true }));
    } else if (item.name === "style") {
      const names = snap.styles.includes(item.value) ? snap.styles : [...snap.styles, item.value];
      label.append(el("select", { name: item.name }, ...names.map((n) => el("option", { value: n, text: n, selected: n === item.value }))));
    } else {
      const text = item.value === null ? "" : Array.isArray(item.value) ? item.value.join(", ") : String(item.value);
      label.append(el("input", { type: "text", name: item.name, value: text, placeholder: item.value === null ? "none" : "",
        "data-initial": text, title: item.shown }));
    }
    form.append(label);
  }
  $("settings-apply").disabled = true;
}

function settingValue(input) {
  const name = input.name;
  if (input.type === "checkbox") return input.checked;
  const text = input.value.trim();
  if (name === "generate") return text ? text.split(/[\s,]+/).filter(Boolean) : [];
  if (name === "threshold") return text === "" ? null : Number(text);
  if (NUMBERS.has(name)) return Number(text);
  return text;
}

function changedSettings() {
  const out = {};
  for (const input of $("settings-form").querySelectorAll("input, select")) {
    const item = snap.settings.find((x) => x.name === input.name);
    const value = settingValue(input);
    const before = item.value === null && input.type !== "checkbox" ? (input.name === "generate" ? [] : input.name === "threshold" ? null : "") : item.value;
    const same = JSON.stringify(value) === JSON.stringify(before) ||
      (typeof before === "number" && value === before);
    input.closest("label").classList.toggle("changed", !same);
    if (!same) out[input.name] = value;
  }
  return out;
}

$("settings-form").addEventListener("input", () => { $("settings-apply").disabled = !Object.keys(changedSettings()).length; });
$("settings-form").addEventListener("change", () => { $("settings-apply").disabled = !Object.keys(changedSettings()).length; });
$("settings-apply").addEventListener("click", () => {
  const changes = changedSettings();
  if (Object.keys(changes).length) act("/api/settings", { settings: changes })();
});

// -- loading and progress ------------------------------------------------------------------------
// The shot of the new cut that stands for ``id`` of the old one: itself, the sentence that
// replaced it (an edit), or the shot now at its place.
function successor(id, old) {
  if (!id) return null;
  if (snap.shots.some((s) => s.id === id)) return id;
  const edited = snap.shots.find((s) => s.previous === id);
  if (edited) return edited.id;
  const at = old ? old.shots.findIndex((s) => s.id === id) : -1;
  if (at < 0 || !snap.shots.length) return null;
  return snap.shots[Math.min(at, snap.shots.length - 1)].id;
}

async function load() {
  const old = snap;
  const playing = old && player.dataset.film ? shotAt(player.currentTime) : null;
  snap = await api("/api/project");
  if (old && snap.cut !== old.cut) {  // follow the recut: the selection and the playhead
    selected = successor(selected, old);
    keepShot = successor(keepShot || (playing ? playing.id : null), old);
    if (!keepShot && playAfter) {  // nothing chosen: show what the edit changed
      const changed = snap.shots.find((s) => s.status === "edited" || s.status === "inserted");
      keepShot = changed ? changed.id : null;
    }
  }
  document.title = `montage studio · ${snap.script_path.split("/").pop()}`;
  $("where").textContent = snap.script_path.split("/").pop();
  $("where").title = snap.script_path;
  $("cutinfo").textContent = snap.cut ? `cut ${snap.cut} · ${snap.shots.length} shots · ${clock(snap.seconds)}` : "no cut yet";
  if (!dirty) renderScript();
  if (snap.script_problem) scriptError(snap.script_problem, "", null);
  renderStrip();
  renderHistory();
  renderSkipped();
  renderSettings();
  loadFilm();
  if (selected && snap.shots.some((s) => s.id === selected)) select(selected, false);
  else if (old && snap.cut !== old.cut) $("shot").replaceChildren(el("p", { class: "muted", text: "Click a sentence or a block of the timeline to see why its clip was chosen and to change it." }));
  document.body.dataset.cut = String(snap.cut);
  if (!document.body.dataset.ready) document.body.dataset.readyMs = String(Math.round(performance.now()));
  document.body.dataset.ready = "1";
}

function startWaiting(job, what) {
  waiting = Math.max(waiting, job);
  if (what === "save") {
    keepShot = selected || keepShot;
    playAfter = true;  // the new film plays from that shot once it is in
  }
  poll();
}

let timer = null;
async function poll() {
  clearTimeout(timer);
  let st;
  try { st = await api(waiting > lastDone ? `/api/status?after=${waiting}` : "/api/status"); }
  catch (e) { showAlert("The studio does not answer", e.message, "is montage studio still running?"); timer = setTimeout(poll, 3000); return; }
  const working = st.state === "working" || st.done < waiting;
  $("progress").hidden = !working;
  $("progress-text").textContent = working ? `Recutting: ${st.stage || "waiting"}` : "";
  document.body.dataset.busy = working ? "1" : "";
  if (!st.library_ok) showAlert("The footage library is missing:", st.library, "put the folder back (or remount it); the project and its films are safe, and the studio keeps the last cut");
  if (st.done > lastDone && st.state !== "working") {
    lastDone = st.done;
    if (st.error) {
      showJobError(st.error);
    } else {
      document.body.dataset.error = "";
      if (st.library_ok) showAlert(null);
      $("script-error").hidden = true;
      if (savedText !== null && scriptText() === savedText) setDirty(false);  // typed on? keep it
      savedText = null;
      await load();
    }
  }
  timer = setTimeout(poll, working ? 0 : 2000);  // while waiting, the server holds the question
}

window.addEventListener("resize", () => { if (snap) renderStrip(); });
function showJobError(err) {
  if (err.what === "save the script" || err.what === "first cut" || err.what === "recut from the script")
    scriptError(err.message, err.hint, err.line);
  else showAlert(`Could not ${err.what}:`, err.message, err.hint);
  document.body.dataset.error = err.message;
}

api("/api/status").then((st) => { lastDone = st.done; if (st.error) showJobError(st.error); })
  .catch(() => {}).then(load).then(poll)
  .catch((e) => showAlert("Could not load the project", e.message, e.hint));
