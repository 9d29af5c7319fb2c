// The interlog web console: sign in with a key, then one page per concern.
// The key lives in this tab only (sessionStorage) and is cleared by signing
// out. Every value from the API is rendered as text (see dom.js).
import { call } from "./api.js";
import { errorBox, fill, h, status } from "./dom.js";
import { overviewPage } from "./pages/overview.js";
import { keysPage } from "./pages/keys.js";
import { auditPage } from "./pages/audit.js";
import { alertsPage } from "./pages/alerts.js";
import { interactionPage, interactionsPage, sessionPage } from "./pages/interactions.js";
import { settingsPage } from "./pages/settings.js";
import { deliveriesPage, webhooksPage } from "./pages/webhooks.js";
import { erasuresPage, forgetErasures } from "./pages/erasures.js";

const STORE = "interlog.console.key";

/** Pages in navigation order; `needs` is the scope the page's API calls need. */
const PAGES = [
  { path: "overview", title: "Overview", needs: "admin", render: overviewPage },
  { path: "keys", title: "Keys", needs: "admin", render: keysPage },
  { path: "audit", title: "Audit log", needs: "admin", render: auditPage },
  { path: "alerts", title: "Alerts", needs: "read", render: alertsPage },
  { path: "interactions", title: "Interactions", needs: "read", render: interactionsPage },
  { path: "erasures", title: "Erasures", needs: "admin", render: erasuresPage },
  { path: "webhooks", title: "Webhooks", needs: "admin", render: webhooksPage },
  { path: "settings", title: "Org settings", needs: "admin", render: settingsPage },
];

/** Routes that are not in the navigation (a detail of a page). */
const DETAILS = [
  { prefix: "interactions/", parent: "interactions", render: interactionPage },
  { prefix: "sessions/", parent: "interactions", render: sessionPage },
  { prefix: "webhooks/", parent: "webhooks", render: deliveriesPage },
];

let session = null; // { key, scopes: { admin, read } }

/** What a key may do, found by asking: one admin and one read call. */
async function probe(key) {
  const scopes = { admin: false, read: false };
  const tryScope = async (name, path, query) => {
    try {
      await call(key, "GET", path, { query });
      scopes[name] = true;
    } catch (e) {
      if (e.status !== 403) throw e;
    }
  };
  await tryScope("admin", "/v1/org");
  await tryScope("read", "/v1/alerts", { limit: 1 });
  return scopes;
}

function reason(needs) {
  return `Needs a key with the ${needs} scope; this key does not have it.`;
}

function signOut() {
  session = null;
  forgetErasures();
  sessionStorage.removeItem(STORE);
  if (location.hash) history.replaceState(null, "", location.pathname);
  render();
}

function signInView(error) {
  const input = h("input", {
    id: "key",
    type: "password",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    placeholder: "ck_live_…",
    "aria-describedby": "key-hint",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const out = h("div", { class: "out", "aria-live": "polite" }, error ? errorBox(error) : null);
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": "signin-title" },
    h("h1", { id: "signin-title" }, "interlog console"),
    h("div", { class: "field" }, h("label", { for: "key" }, "API key"), input),
    h(
      "p",
      { class: "hint", id: "key-hint" },
      "Paste an admin or read key of your org. It is kept in this tab only and forgotten when you sign out or close the tab.",
    ),
    button,
    out,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    fill(out, status("Checking the key…"));
    try {
      const scopes = await probe(key);
      if (!scopes.admin && !scopes.read) {
        fill(out, errorBox({ code: "FORBIDDEN", message: "This key has neither the admin nor the read scope." }));
        button.disabled = false;
        return;
      }
      session = { key, scopes };
      sessionStorage.setItem(STORE, JSON.stringify(session));
      input.value = "";
      location.hash = `#/${scopes.admin ? "overview" : "alerts"}`;
      render();
    } catch (err) {
      fill(out, errorBox(err));
      button.disabled = false;
    }
  });
  return h("main", { id: "main", tabindex: "-1" }, form);
}

function currentRoute() {
  const raw = location.hash.replace(/^#\/?/, "");
  const [pathPart, queryPart] = raw.split("?");
  const path = decodeURIComponent(pathPart || "");
  const params = new URLSearchParams(queryPart || "");
  const page = PAGES.find((p) => p.path === path);
  if (page) return { page, params, arg: null };
  for (const d of DETAILS) {
    if (path.startsWith(d.prefix) && path.length > d.prefix.length) {
      const parent = PAGES.find((p) => p.path === d.parent);
      return { page: { ...parent, render: d.render }, params, arg: path.slice(d.prefix.length), parent };
    }
  }
  return { page: null, params, arg: null };
}

function nav(active) {
  return h(
    "nav",
    { "aria-label": "Console pages" },
    h(
      "ul",
      {},
      PAGES.map((p) => {
        const allowed = session.scopes[p.needs];
        if (!allowed) {
          return h(
            "li",
            {},
            h(
              "span",
              { class: "disabled", "aria-disabled": "true", title: reason(p.needs), tabindex: "0" },
              p.title,
              h("span", { class: "why" }, ` (needs ${p.needs})`),
            ),
          );
        }
        return h(
          "li",
          {},
          h("a", { href: `#/${p.path}`, "aria-current": p.path === active ? "page" : null }, p.title),
        );
      }),
    ),
  );
}

function shell(activePath, content) {
  const scopes = Object.entries(session.scopes)
    .filter(([, v]) => v)
    .map(([k]) => k)
    .join(", ");
  const skip = (e) => {
    e.preventDefault();
    document.getElementById("main").focus();
  };
  return [
    h("a", { class: "skip", href: "#main", on: { click: skip } }, "Skip to content"),
    h(
      "header",
      { class: "top" },
      h("a", { class: "brand", href: "#/" + (session.scopes.admin ? "overview" : "alerts") }, "interlog"),
      h("span", { class: "who" }, `Signed in · scopes: ${scopes}`),
      h("button", { type: "button", class: "signout", on: { click: signOut } }, "Sign out"),
    ),
    nav(activePath),
    h("main", { id: "main", tabindex: "-1" }, content),
  ];
}

let renderSeq = 0;

async function render() {
  const app = document.getElementById("app");
  renderSeq += 1;
  const seq = renderSeq;
  if (!session) {
    fill(app, signInView());
    document.getElementById("key").focus();
    return;
  }
  const { page, params, arg } = currentRoute();
  if (!page) {
    location.replace(`#/${session.scopes.admin ? "overview" : "alerts"}`);
    return;
  }
  const content = h("div", { class: "page" });
  fill(app, ...shell(page.path, content));
  document.title = `${page.title} · interlog console`;
  if (!session.scopes[page.needs]) {
    fill(
      content,
      h("h1", {}, page.title),
      h("p", { class: "error", role: "alert" }, `This page is not available: ${reason(page.needs)}`),
    );
    return;
  }
  const ctx = {
    api: (method, path, opts) => call(session.key, method, path, opts),
    scopes: session.scopes,
    params,
    arg,
    go: (hash) => {
      if (location.hash === hash) render();
      else location.hash = hash;
    },
    current: () => seq === renderSeq,
  };
  fill(content, status("Loading…"));
  try {
    await page.render(content, ctx);
  } catch (err) {
    if (seq !== renderSeq) return;
    fill(content, h("h1", {}, page.title), errorBox(err));
    if (err.status === 401) {
      content.append(h("p", {}, "The key is no longer valid. ", h("button", { type: "button", on: { click: signOut } }, "Sign in again")));
    }
  }
  if (seq === renderSeq) document.getElementById("main").focus({ preventScroll: true });
}

function restore() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(STORE) || "null");
    if (saved && typeof saved.key === "string" && saved.scopes) session = saved;
  } catch {
    session = null;
  }
}

window.addEventListener("hashchange", render);
restore();
render();
