// The audiogen studio page: forms built from /api/info (the library's defaults), uploads as raw request bodies,
// one job request, then a poll of /api/jobs for the queue (live progress) and the history (players, spectrograms,
// downloads). Every check of the parameters is the server's: the page shows its one-line error as it comes.
"use strict";

const state = { info: null, task: "render", forms: {}, cards: new Map(), mine: new Set(), shownErrors: new Set() };
const $ = (selector) => document.querySelector(selector);

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key in node && typeof value !== "string") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) if (child !== null && child !== undefined) node.append(child);
  return node;
}

// ------------------------------------------------------------------ the forms, one per task
const file = (role, label, kind, hint) => ({ type: "file", name: role, label, kind, hint });
const num = (name, label, value, hint) => ({ type: "number", name, label, value, hint });
const text = (name, label, value, hint) => ({ type: "text", name, label, value, hint });
const select = (name, label, choices, value, hint) => ({ type: "select", name, label, choices, value, hint });
const check = (name, label, value) => ({ type: "check", name, label, value });

const FOLLOW_MIDI = "how strongly the audio follows the MIDI; 1 = off";

function taskSpecs(info) {
  const s = info.defaults.sampling, l = info.defaults.loops, c = info.defaults.compose;
  // guidance: the field's help (what the output is pushed toward), or none
  const sampling = (guidance) => [
    num("seed", "Seed", s.seed, "the same seed gives the same audio"),
    num("temperature", "Temperature", s.temperature, "0 = greedy, higher = more varied"),
    num("top_k", "Top-k", s.top_k),
    ...(guidance ? [num("guidance", "Guidance", s.guidance, guidance)] : []),
  ];
  const formats = select("format", "Format", info.formats, l.format, "WAV, Ogg Vorbis or FLAC");
  const sketchModes = info.composer && info.conditional ? ["compose", "free"] : ["free", "compose"];
  return {
    render: {
      help: "Render a MIDI sketch as audio, following its notes and timing; a prompt recording sets the sound.",
      fields: [file("midi", "MIDI sketch", "midi", ".mid or .midi (required)"),
        file("prompt", "Timbre prompt", "audio", "optional recording whose sound the render takes on"),
        num("seconds", "Seconds", "", "empty: the MIDI's length plus 1 s"), ...sampling(FOLLOW_MIDI), formats],
    },
    loops: {
      help: "Seamless loops of an exact number of bars. Loop points ride in the file: WAV smpl/acid chunks, "
        + "Ogg/FLAC LOOPSTART/LOOPLENGTH; loops.json lists them all.",
      fields: [num("count", "Loops", l.count), num("bars", "Bars", l.bars), num("bpm", "BPM", l.bpm),
        num("beats_per_bar", "Beats per bar", l.beats_per_bar), formats,
        select("sketch", "Sketch", sketchModes, sketchModes[0], "compose one per loop, or free (no sketch)"),
        text("style", "Style", l.style, info.styles.join(", ")),
        file("midi", "MIDI sketch", "midi", "optional: fitted to the loop's bars (instead of composing)"),
        file("prompt", "Timbre prompt", "audio", "optional recording whose sound the loops take on"),
        ...sampling(FOLLOW_MIDI)],
    },
    continue: {
      help: "Continue a recording (any rate, any channels) for a number of seconds.",
      fields: [file("seed_audio", "Seed recording", "audio", ".wav, .flac, .ogg or .mp3 (required)"),
        num("seconds", "Seconds", info.defaults.continue.seconds, "seconds of new audio"),
        check("keep_prompt", "Start with the seed", true),
        ...sampling("how strongly the audio keeps to the seed, against silence; 1 = off"), formats],
    },
    compose: {
      help: "Write a MIDI sketch with the composer: exactly the bars, meter and key asked for.",
      fields: [num("bars", "Bars", c.bars), text("style", "Style", c.style, info.styles.join(", ")),
        text("key", "Key", c.key, "C, F#, Bb major, D minor, auto"),
        text("meter", "Meter", c.meter, "4/4, 3/4, 6/8 ..."),
        num("bpm", "BPM", c.bpm), check("loop", "Loop (last bar leads into the first)", false),
        file("melody", "Melody to continue", "midi", "optional .mid"),
        num("seed", "Seed", c.seed), num("temperature", "Temperature", c.temperature), num("top_k", "Top-k", c.top_k)],
    },
  };
}

function buildField(task, spec) {
  const id = `${task}-${spec.name}`;
  let input;
  if (spec.type === "file") {
    const accept = state.info.upload_types[spec.kind].join(",");
    input = el("input", { type: "file", id, name: spec.name, accept, "data-kind": spec.kind, "data-role": spec.name });
  } else if (spec.type === "select") {
    input = el("select", { id, name: spec.name }, spec.choices.map((c) => el("option", { value: c }, c)));
    input.value = spec.value;
  } else if (spec.type === "check") {
    input = el("input", { type: "checkbox", id, name: spec.name, "data-type": "check" });
    input.checked = !!spec.value;
  } else {
    const mode = spec.type === "number" ? "decimal" : "text";
    input = el("input", { type: "text", id, name: spec.name, inputmode: mode, "data-type": spec.type,
      value: String(spec.value ?? ""), placeholder: spec.type === "number" && spec.value === "" ? "default" : null });
  }
  return el("div", { class: `field ${spec.type === "check" ? "check" : ""}` }, el("label", { for: id }, spec.label),
    input, spec.hint ? el("div", { class: "hint" }, spec.hint) : null);
}

function buildForms(info) {
  const specs = taskSpecs(info);
  for (const [task, spec] of Object.entries(specs)) {
    const fields = spec.fields.map((f) => buildField(task, f));
    const box = el("div", { class: "task-fields", "data-task": task, hidden: true }, fields);
    state.forms[task] = { box, help: spec.help };
    $("#fields").append(box);
  }
  for (const tab of document.querySelectorAll("#tasks button")) {
    tab.addEventListener("click", () => selectTask(tab.dataset.task));
  }
  selectTask(info.conditional ? "render" : "continue");
}

function selectTask(task) {
  state.task = task;
  for (const tab of document.querySelectorAll("#tasks button")) {
    tab.setAttribute("aria-selected", String(tab.dataset.task === task));
  }
  for (const [name, form] of Object.entries(state.forms)) form.box.hidden = name !== task;
  $("#task-help").textContent = state.forms[task].help;
}

// A number field's text: a number when it reads as one, else the text itself (the server says what is wrong).
function value(input) {
  if (input.dataset.type === "check") return input.checked;
  const raw = input.value.trim();
  if (raw === "") return null;
  if (input.dataset.type === "number") return /^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(raw) ? Number(raw) : raw;
  return raw;
}

// ------------------------------------------------------------------ submitting
function showError(line) {
  const box = $("#error");
  box.textContent = line;
  box.hidden = !line;
}

async function answer(response) {
  let body = {};
  try { body = await response.json(); } catch { body = {}; }
  if (!response.ok) throw new Error(body.error || `audiogen: error: the server answered ${response.status}`);
  return body;
}

async function upload(input) {
  const file = input.files[0];
  const limit = state.info.max_upload_bytes;
  if (file.size > limit) {  // refused here too: the server would close the connection on a body over the cap
    const size = (file.size / 1e6).toFixed(1);
    throw new Error(`audiogen: error: ${file.name}: ${size} MB is over the ${limit / 1e6} MB upload limit`);
  }
  const response = await fetch(`/api/uploads?kind=${input.dataset.kind}`, {
    method: "POST", body: file, headers: { "X-Filename": encodeURIComponent(file.name) },
  });
  return (await answer(response)).id;
}

async function submit(event) {
  event.preventDefault();
  const task = state.task, box = state.forms[task].box, button = $("#generate");
  showError("");
  button.disabled = true;
  const uploads = {};
  try {
    const params = {};
    for (const input of box.querySelectorAll("input, select")) {
      if (input.type === "file") {
        if (input.files.length) uploads[input.dataset.role] = await upload(input);
      } else {
        params[input.name] = value(input);
      }
    }
    if (task === "loops") {  // a sketch of one's own wins; else compose one per loop (in a style) or none
      const mode = params.sketch;
      delete params.sketch;
      if (uploads.midi || mode === "free") delete params.style;
      if (!uploads.midi) params.compose = mode === "compose";
    }
    const response = await fetch("/api/jobs", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ task, params, uploads }),
    });
    const { job } = await answer(response);
    state.mine.add(job.id);
    poll();
  } catch (err) {
    // Files already uploaded for this request go back (a refused request leaves nothing behind on the server).
    for (const id of Object.values(uploads)) fetch(`/api/uploads/${id}`, { method: "DELETE" }).catch(() => {});
    showError(err.message.startsWith("audiogen:") ? err.message : `audiogen: error: ${err.message}`);
  } finally {
    button.disabled = false;
  }
}

// ------------------------------------------------------------------ queue and history
const files = (job, name, download) => `/files/${job.id}/${encodeURIComponent(name)}${download ? "?download=1" : ""}`;
const link = (job, name) => el("a", { href: files(job, name, true), download: name }, name);
const clock = (seconds) => new Date(seconds * 1000).toLocaleTimeString();

function describe(job) {
  const d = state.info.defaults, inputs = Object.values(job.inputs);
  const p = { ...(job.task === "compose" ? d.compose : { ...d.sampling, ...(job.task === "loops" ? d.loops : {}) }),
    ...job.params };
  const bits = [];
  if (inputs.length) bits.push(inputs.join(" + "));
  if (job.task === "loops") bits.push(`${p.count} x ${p.bars} bars at ${p.bpm} BPM`);
  if (job.task === "compose") bits.push(`${p.bars} bars of ${p.meter}, ${p.style}, ${p.key}`);
  if (p.seconds != null) bits.push(`${p.seconds} s`);
  bits.push(`seed ${p.seed}`);
  return bits.join(" · ");
}

function progressText(job) {
  const { phase, done, total } = job.progress;
  if (job.state === "queued") return job.position === 1 ? "next" : `#${job.position} in the queue`;
  const percent = total ? Math.floor((100 * done) / total) : 0;
  if (total) return `${phase}: ${Math.floor(done)} / ${Math.floor(total)} steps (${percent} %)`;
  return `${phase}...`;
}

function renderQueue(jobs) {
  const waiting = jobs.filter((j) => j.state === "queued" || j.state === "running").reverse();
  const list = $("#queue");
  list.replaceChildren(...waiting.map((job) => {
    const counted = job.state === "running" && job.progress.total;  // no value: an indeterminate bar
    return el("li", { class: `job ${job.state}`, "data-job": job.id, "data-state": job.state },
      el("span", {}, el("b", {}, job.task), " ", el("span", { class: "muted" }, describe(job))),
      el("span", { class: "phase" }, job.state),
      el("progress", { max: job.progress.total || 1, value: counted ? job.progress.done : null }),
      el("span", { class: "phase" }, progressText(job)));
  }));
  $("#queue-empty").hidden = waiting.length > 0;
}

function itemView(job, item) {
  const head = [];
  if (item.audio) head.push(el("b", {}, item.audio), ` · ${item.seconds.toFixed(2)} s · ${item.sample_rate} Hz`);
  else head.push(el("b", {}, item.midi), ` · ${item.seconds.toFixed(2)} s of MIDI`);
  const loop = item.loop;
  if (loop) head.push(` · loop ${loop.loop_start} + ${loop.loop_length} samples, ${loop.bars} bars at ${loop.bpm} BPM`);
  const downloads = [item.audio, item.midi].filter(Boolean).map((name) => link(job, name));
  return el("div", { class: "item" }, el("div", { class: "item-head" }, head),
    item.audio ? el("audio", { controls: true, preload: "metadata", src: files(job, item.audio) }) : null,
    item.spectrogram ? el("img", { src: files(job, item.spectrogram), alt: `spectrogram of ${item.audio}` }) : null,
    el("div", { class: "downloads" }, downloads));
}

function card(job) {
  const took = job.finished && job.started ? ` · ${(job.finished - job.started).toFixed(1)} s` : "";
  const node = el("article", { class: "card", "data-job": job.id, "data-state": job.state, "data-task": job.task },
    el("header", {}, el("b", {}, job.task), el("span", { class: "badge" }, job.state),
      el("span", { class: "muted" }, describe(job)), el("span", { class: "muted" }, `${clock(job.created)}${took}`)));
  if (job.state === "failed") {
    node.append(el("p", { class: "error" }, job.error));
  } else {
    node.append(el("div", { class: "items" }, job.items.map((item) => itemView(job, item))));
    const listed = new Set(job.items.flatMap((i) => [i.audio, i.midi, i.spectrogram]));
    const others = job.files.filter((name) => !listed.has(name));
    if (others.length) node.append(el("div", { class: "downloads" }, others.map((name) => link(job, name))));
  }
  return node;
}

function renderHistory(jobs) {
  const history = $("#history");
  // Oldest first, each prepended once: a card (and its players) is never rebuilt while someone listens.
  for (const job of jobs.filter((j) => j.state === "done" || j.state === "failed").reverse()) {
    if (state.cards.has(job.id)) continue;
    const node = card(job);
    state.cards.set(job.id, node);
    history.prepend(node);
    if (job.state === "failed" && state.mine.has(job.id) && !state.shownErrors.has(job.id)) {
      state.shownErrors.add(job.id);
      showError(job.error);
    }
  }
  $("#history-empty").hidden = state.cards.size > 0;
}

let timer = null;
async function poll() {
  clearTimeout(timer);
  let busy = false;
  try {
    const { jobs } = await answer(await fetch("/api/jobs"));
    renderQueue(jobs);
    renderHistory(jobs);
    busy = jobs.some((j) => j.state === "queued" || j.state === "running");
  } catch (err) {
    busy = true;  // the server may be restarting: keep asking
  }
  timer = setTimeout(poll, busy ? 400 : 3000);
}

async function start() {
  const info = await answer(await fetch("/api/info"));
  state.info = info;
  const channels = info.channels === 1 ? "mono" : `${info.channels} channels`;
  $("#model-info").textContent = `model ${info.model ?? "(in memory)"} · ${info.sample_rate} Hz ${channels} · `
    + `${info.conditional ? "MIDI-conditioned" : "unconditional"} · composer ${info.composer ? "ready" : "none"} · `
    + `files in ${info.output_dir}/`;
  buildForms(info);
  $("#job-form").addEventListener("submit", submit);
  document.body.dataset.ready = "true";
  poll();
}

start().catch((err) => showError(err.message));
