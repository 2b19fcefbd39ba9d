// The review page's behaviour. Text from the suite is never parsed as HTML here: the server
// renders it escaped, and this script only reads attributes and sets textContent.
"use strict";

(function () {
  const token = document.querySelector('meta[name="review-token"]').getAttribute("content");
  const list = document.getElementById("cases");
  const progress = document.getElementById("progress");
  const pendingEl = document.getElementById("pending");
  const message = document.getElementById("message");
  const saveButton = document.getElementById("save");
  const pending = new Map();  // case id -> expected route (a change or a confirmation), not saved yet
  let current = null;

  function caseOf(el) { return el ? el.closest("li.case") : null; }
  function selectOf(li) { return li.querySelector('select[name="expected_route"]'); }
  function cases() { return Array.from(list.querySelectorAll("li.case")); }

  function showPending() {
    pendingEl.textContent = pending.size ? pending.size + " unsaved" : "";
  }

  function say(text, bad) {
    message.textContent = text;
    message.className = bad ? "bad" : "";
  }

  function markState(li) {
    const id = li.dataset.caseId;
    const state = li.querySelector(".edit-state");
    if (pending.has(id)) {
      li.classList.add("pending");
      state.textContent = pending.get(id) === li.dataset.saved ? "confirmed, unsaved" : "changed, unsaved";
    } else {
      li.classList.remove("pending");
      state.textContent = "";
    }
  }

  async function post(path, edits) {
    const response = await fetch(path, {
      method: "POST",
      headers: {"Content-Type": "application/json", "X-Review-Token": token},
      body: JSON.stringify({edits: edits}),
    });
    let body = {};
    try { body = await response.json(); } catch (e) { body = {}; }
    if (!response.ok) { throw new Error(body.error || ("HTTP " + response.status)); }
    return body;
  }

  function journal(edit) {
    post("/api/draft", [edit]).catch(function (err) { say("not journaled: " + err.message, true); });
  }

  function setLabel(li, value, confirm) {
    const id = li.dataset.caseId;
    const select = selectOf(li);
    if (value !== null) { select.value = value; }
    pending.set(id, select.value);
    markState(li);
    showPending();
    journal({id: id, expected_route: select.value});
    if (confirm) { move(1); }
  }

  function undo(li) {
    const id = li.dataset.caseId;
    if (!pending.has(id)) { return; }
    pending.delete(id);
    selectOf(li).value = li.dataset.saved;
    markState(li);
    showPending();
    journal({id: id, undo: true});
  }

  async function save() {
    if (!pending.size) { say("nothing to save"); return; }
    const edits = Array.from(pending, function (entry) { return {id: entry[0], expected_route: entry[1]}; });
    saveButton.disabled = true;
    try {
      const result = await post("/api/save", edits);
      (result.saved || []).forEach(function (id) {
        const li = list.querySelector('li.case[data-case-id="' + CSS.escape(id) + '"]');
        if (!li) { return; }
        li.dataset.saved = pending.get(id);
        li.classList.add("reviewed");
        li.querySelector(".state").textContent = "reviewed (human)";
        pending.delete(id);
        markState(li);
      });
      progress.textContent = result.reviewed + " of " + result.total + " reviewed";
      showPending();
      say("saved " + (result.saved || []).length + " cases");
    } catch (err) {
      say("not saved: " + err.message + " (your edits are journaled)", true);
    } finally {
      saveButton.disabled = false;
    }
  }

  function focusCase(li) {
    if (!li) { return; }
    if (current) { current.classList.remove("current"); }
    current = li;
    li.classList.add("current");
    li.focus({preventScroll: true});
    li.scrollIntoView({block: "nearest"});
  }

  function move(step) {
    const all = cases();
    const at = current ? all.indexOf(current) : -1;
    const next = all[Math.min(all.length - 1, Math.max(0, at + step))];
    focusCase(next);
  }

  // Edits journaled before a crash or a closed tab come back as unsaved.
  cases().forEach(function (li) {
    if (li.dataset.pending !== undefined) { pending.set(li.dataset.caseId, li.dataset.pending); markState(li); }
  });
  showPending();

  list.addEventListener("change", function (event) {
    if (event.target.matches('select[name="expected_route"]')) { setLabel(caseOf(event.target), null, false); }
  });
  list.addEventListener("click", function (event) {
    const li = caseOf(event.target);
    if (!li) { return; }
    if (current !== li) { focusCase(li); }
    if (event.target.matches("button.confirm")) { setLabel(li, null, true); }
    if (event.target.matches("button.undo")) { undo(li); }
  });
  list.addEventListener("focusin", function (event) {
    const li = caseOf(event.target);
    if (li && li !== current) { if (current) { current.classList.remove("current"); } current = li; li.classList.add("current"); }
  });
  saveButton.addEventListener("click", save);

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) {
      if ((event.ctrlKey || event.metaKey) && event.key === "s") { event.preventDefault(); save(); }
      return;
    }
    const target = event.target;
    if (target && target.tagName === "SELECT" && !/^[0-9fjkcsu]$/.test(event.key) && event.key !== "Enter") { return; }
    if (target && target.tagName === "BUTTON" && event.key === "Enter") { return; }
    const key = event.key;
    if (key === "j" || key === "k") { event.preventDefault(); move(key === "j" ? 1 : -1); return; }
    if (key === "s") { event.preventDefault(); save(); return; }
    if (!current) { if ("0123456789fcu".indexOf(key) >= 0 || key === "Enter") { focusCase(cases()[0]); } else { return; } }
    const select = selectOf(current);
    if (/^[1-9]$/.test(key)) {
      event.preventDefault();
      const tasks = Array.from(select.options).filter(function (o) { return o.value !== "fallback"; });
      const option = tasks[parseInt(key, 10) - 1];
      if (option) { setLabel(current, option.value, false); }
    } else if (key === "0" || key === "f") {
      event.preventDefault();
      setLabel(current, "fallback", false);
    } else if (key === "Enter" || key === "c") {
      event.preventDefault();
      setLabel(current, null, true);
    } else if (key === "u") {
      event.preventDefault();
      undo(current);
    }
  });

  // No "leave page?" prompt: every unsaved edit is already in the server's journal.

  focusCase(cases()[0]);
})();
