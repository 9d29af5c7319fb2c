// DOM helpers. Everything the API returns is put on the page as text
// (text nodes, `textContent`, attribute values): never as HTML.

/** Builds an element: `attrs` are attributes (`on` holds event handlers),
 * children are nodes or strings (strings become text nodes; null is skipped). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "on") {
      for (const [ev, fn] of Object.entries(v)) el.addEventListener(ev, fn);
    } else if (k === "class") {
      el.className = v;
    } else if (k === "value") {
      el.value = v;
    } else if (k === "checked") {
      el.checked = Boolean(v);
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

let uid = 0;
/** A fresh id for label/control pairs. */
export function nextId(base) {
  uid += 1;
  return `${base}-${uid}`;
}

/** A labelled control: returns [wrapper, control]. */
export function field(label, control, hint) {
  const id = control.id || nextId("f");
  control.id = id;
  const hintEl = hint ? h("span", { class: "hint", id: `${id}-hint` }, hint) : null;
  if (hintEl) control.setAttribute("aria-describedby", hintEl.id);
  return [h("div", { class: "field" }, h("label", { for: id }, label), control, hintEl), control];
}

/** A timestamp as the API sends it (UTC, RFC 3339), shortened for reading. */
export function when(ts) {
  if (!ts) return "—";
  return String(ts).replace("T", " ").replace(/\.\d+Z$|Z$/, " UTC");
}

/** A table; `rows` are arrays of cells (nodes or strings). */
export function table(caption, headers, rows) {
  return h(
    "div",
    { class: "table-wrap", tabindex: "0", role: "region", "aria-label": caption },
    h(
      "table",
      {},
      h("caption", { class: "sr-only" }, caption),
      h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
}

/** A status line (polite live region). */
export function status(text) {
  return h("p", { class: "status", role: "status" }, text);
}

/** The API's error with its message, code and request id. */
export function errorBox(err) {
  const rid = err && err.requestId;
  return h(
    "div",
    { class: "error", role: "alert" },
    h("p", {}, h("strong", {}, err && err.code ? `${err.code}: ` : "Error: "), (err && err.message) || String(err)),
    err && err.details && err.details.length
      ? h("ul", {}, err.details.map((d) => h("li", {}, d.field ? `${d.field}: ${d.message}` : d.message)))
      : null,
    rid ? h("p", { class: "rid" }, "Request id: ", h("code", {}, rid)) : null,
  );
}

/** Clears the messages shown beside a field by `showFieldErrors`. */
export function clearFieldErrors(inline, control) {
  fill(inline);
  control.removeAttribute("aria-invalid");
}

/** A refused form: the API's details that `describe` turns into a message
 * (it returns null for the others) are shown beside `control`, in `inline`
 * (a list with an id); the API's error with the other details in `out`. */
export function showFieldErrors(out, inline, control, err, describe) {
  const items = [];
  const rest = [];
  for (const d of err.details || []) {
    const text = describe(d);
    if (text === null) rest.push(d);
    else items.push(h("li", {}, text));
  }
  if (items.length) {
    fill(inline, items);
    control.setAttribute("aria-invalid", "true");
    control.setAttribute("aria-errormessage", inline.id);
  }
  fill(out, errorBox({ ...err, message: err.message, code: err.code, requestId: err.requestId, details: rest }));
}

/** Asks for confirmation in a modal dialog; resolves true or false. */
export function confirmDialog(title, text, action) {
  return new Promise((resolve) => {
    const titleId = nextId("dlg");
    const done = (v) => {
      dlg.close();
      dlg.remove();
      resolve(v);
    };
    const cancel = h("button", { type: "button", on: { click: () => done(false) } }, "Cancel");
    const ok = h("button", { type: "button", class: "danger", on: { click: () => done(true) } }, action);
    const dlg = h(
      "dialog",
      { "aria-labelledby": titleId, class: "confirm" },
      h("h2", { id: titleId }, title),
      h("p", {}, text),
      h("div", { class: "actions" }, cancel, ok),
    );
    dlg.addEventListener("cancel", (e) => {
      e.preventDefault();
      done(false);
    });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** A secret shown this once (a key's plaintext, a signing secret) with a
 * copy button; `noun` names it in the warning. */
export function secretPanel(title, secret, noun = "key") {
  const code = h("code", { class: "secret", id: "new-secret" }, secret);
  const note = h("span", { class: "copied", role: "status" });
  const copy = h(
    "button",
    {
      type: "button",
      on: {
        click: async () => {
          try {
            await navigator.clipboard.writeText(secret);
            note.textContent = "Copied.";
          } catch {
            const r = document.createRange();
            r.selectNodeContents(code);
            const s = window.getSelection();
            s.removeAllRanges();
            s.addRange(r);
            note.textContent = "Selected: press Ctrl+C (⌘C) to copy.";
          }
        },
      },
    },
    "Copy",
  );
  return h(
    "section",
    { class: "card secret-panel", role: "region", "aria-labelledby": "secret-title" },
    h("h2", { id: "secret-title" }, title),
    h("p", {}, `This is the only time the ${noun} is shown. Store it now; it cannot be shown again.`),
    h("div", { class: "secret-row" }, code, copy, note),
  );
}
