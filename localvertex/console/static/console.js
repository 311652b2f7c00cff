// The console's only script (CSP: script-src 'self'). Pages work without it; it adds the
// run page's live task states and logs, and the inspector's drop zone.
"use strict";

function setState(el, state) {
  // Keep every class but the state-* one.
  el.setAttribute("class", el.getAttribute("class").replace(/\bstate-[\w-]+/g, "").trim() + " state-" + state.replace(/ /g, "-"));
}

function applyLive(live) {
  const runState = document.getElementById("run-state");
  if (runState) { runState.textContent = live.state; setState(runState, live.state); }
  const runDuration = document.getElementById("run-duration");
  if (runDuration) runDuration.textContent = live.duration;
  const error = document.getElementById("run-error");
  if (error && live.error) { error.textContent = live.error; error.classList.remove("hidden"); }
  for (const [name, task] of Object.entries(live.tasks)) {
    const node = document.querySelector('svg.dag g[data-task="' + CSS.escape(name) + '"]');
    if (node) { setState(node, task.state); node.querySelector("text.sub").textContent = task.state; }
    const row = document.querySelector('#tasks tr[data-task="' + CSS.escape(name) + '"]');
    if (!row) continue;
    const stateCell = row.querySelector('[data-field="state"]');
    stateCell.textContent = task.state; setState(stateCell, task.state);
    for (const field of ["start", "end", "duration"]) row.querySelector('[data-field="' + field + '"]').textContent = task[field];
    if (task.error) {
      const box = row.querySelector('[data-field="error"]');
      box.textContent = task.error; box.classList.remove("hidden");
    }
  }
  for (const [name, lines] of Object.entries(live.logs || {})) {
    const pre = document.querySelector('#tasks tr[data-task="' + CSS.escape(name) + '"] [data-field="log"]');
    if (!pre) continue;
    const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;  // follow the tail unless scrolled up
    pre.textContent = lines.length ? lines.join("\n") : "(nothing printed yet)";
    if (atEnd) pre.scrollTop = pre.scrollHeight;
  }
}

function runningTasks(live) {
  // The tasks whose log may still grow: asked for once more after they end, for their last lines.
  const active = ["queued", "pending", "running", "cancelling"];
  return Object.entries(live.tasks).filter(([, task]) => active.includes(task.state)).map(([name]) => name);
}

function followLogs() {
  // A log opened shows its newest lines.
  for (const details of document.querySelectorAll("#tasks details")) {
    details.addEventListener("toggle", () => {
      const pre = details.querySelector('[data-field="log"]');
      if (pre) pre.scrollTop = pre.scrollHeight;
    });
  }
}

async function refreshTuning(live, seen) {
  // The tuning section is re-rendered by the server when the job's state or epochs change.
  const key = JSON.stringify(live.tuning || null);
  if (!live.tuning || key === seen.tuning) return;
  seen.tuning = key;
  const section = document.getElementById("tuning");
  const resp = await fetch(section.dataset.src, { credentials: "same-origin" });
  if (resp.ok) { section.innerHTML = await resp.text(); section.classList.remove("hidden"); }
}

async function refreshArtifacts(run) {
  const resp = await fetch(run.dataset.artifacts, { credentials: "same-origin" });
  if (resp.ok) document.getElementById("artifacts").innerHTML = await resp.text();
}

function pollRun() {
  const run = document.getElementById("run");
  if (!run || run.dataset.active !== "1") return;
  let artifacts = Number(run.dataset.artifactCount || 0);
  const seen = {};
  let running = [];
  const tick = async () => {
    try {
      const query = running.length ? "?logs=" + encodeURIComponent(running.join(",")) : "";
      const resp = await fetch(run.dataset.live + query, { credentials: "same-origin" });
      if (!resp.ok) throw new Error(resp.status);
      const live = await resp.json();
      applyLive(live);
      running = runningTasks(live);
      await refreshTuning(live, seen);
      if (live.artifacts !== artifacts) { artifacts = live.artifacts; await refreshArtifacts(run); }
      if (!live.active) {
        run.dataset.active = "0";
        const cancel = document.getElementById("cancel");
        if (cancel) cancel.remove();
        return;
      }
    } catch (err) { /* the server restarting: try again at the next tick */ }
    setTimeout(tick, 1500);
  };
  setTimeout(tick, 1000);
}

function dropZone() {
  const zone = document.getElementById("dropzone");
  const input = document.getElementById("photo");
  if (!zone || !input) return;
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault(); zone.classList.remove("over");
    if (e.dataTransfer.files.length) { input.files = e.dataTransfer.files; document.getElementById("ask-form").requestSubmit(); }
  });
}

document.addEventListener("DOMContentLoaded", () => { followLogs(); pollRun(); dropZone(); });
