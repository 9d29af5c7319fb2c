import { confirmDialog, errorBox, fill, h, status, when } from "../dom.js";
import { pagedList } from "./list.js";

const PREVIEW = 120;

function preview(text) {
  if (text === null || text === undefined) return "—";
  const s = String(text);
  return h("span", { class: "content" }, s.length > PREVIEW ? `${s.slice(0, PREVIEW)}…` : s);
}

function sessionLink(s) {
  return s ? h("a", { href: `#/sessions/${encodeURIComponent(s)}` }, s) : "—";
}

function idLink(i) {
  return h("a", { href: `#/interactions/${encodeURIComponent(i.id)}` }, h("code", {}, i.id));
}

export async function interactionsPage(el, ctx) {
  const text = (max) => h("input", { type: "text", maxlength: String(max), autocomplete: "off" });
  await pagedList(el, ctx, {
    title: "Interactions",
    caption: "Interactions, newest first",
    route: "interactions",
    path: "/v1/interactions",
    itemsField: "interactions",
    filters: [
      { name: "actor", label: "Actor", input: text(256) },
      { name: "type", label: "Type", input: text(64) },
      { name: "session", label: "Session", input: text(256) },
      { name: "since", label: "Since (RFC 3339)", input: text(40), hint: "e.g. 2026-11-01T00:00:00Z" },
      { name: "until", label: "Until (RFC 3339)", input: text(40) },
    ],
    headers: ["Occurred", "Type", "Actor", "Session", "Content", "Id"],
    row: (i) => [when(i.occurred_at), i.type, i.actor || "—", sessionLink(i.session), preview(i.content), idLink(i)],
  });
}

/** One conversation: the session's interactions, oldest first. */
export async function sessionPage(el, ctx) {
  const session = ctx.arg;
  const data = await ctx.api("GET", `/v1/sessions/${encodeURIComponent(session)}`, { query: { limit: 200 } });
  if (!ctx.current()) return;
  const items = data.interactions || [];
  fill(
    el,
    h("p", {}, h("a", { href: "#/interactions" }, "← Interactions")),
    h("h1", {}, "Conversation ", h("code", {}, session)),
    h("p", { class: "status", role: "status" }, `${items.length} interactions${data.next_cursor ? " (first page)" : ""}.`),
    h(
      "ol",
      { class: "conversation" },
      items.map((i) =>
        h(
          "li",
          { class: "turn" },
          h("div", { class: "turn-head" }, h("strong", {}, i.actor || "—"), ` · ${i.type} · ${when(i.occurred_at)} · `, idLink(i)),
          h("pre", { class: "content" }, i.content === null ? "—" : String(i.content)),
        ),
      ),
    ),
  );
}

export async function interactionPage(el, ctx) {
  const id = ctx.arg;
  const i = await ctx.api("GET", `/v1/interactions/${encodeURIComponent(id)}`);
  if (!ctx.current()) return;
  const out = h("div", { "aria-live": "polite" });
  const erase = h("button", { type: "button", class: "danger" }, "Erase this interaction");
  if (!ctx.scopes.admin) {
    erase.disabled = true;
    erase.title = "Erasing needs the admin scope.";
  }
  erase.addEventListener("click", async () => {
    const ok = await confirmDialog(
      "Erase this interaction?",
      `${i.id} is deleted for good (the erasure is written to the audit log).`,
      "Erase",
    );
    if (!ok) return;
    erase.disabled = true;
    fill(out, status("Erasing…"));
    try {
      await ctx.api("DELETE", `/v1/interactions/${encodeURIComponent(i.id)}`);
      fill(out, h("p", { class: "notice", role: "status" }, `Interaction ${i.id} erased.`));
      erase.remove();
    } catch (err) {
      erase.disabled = false;
      fill(out, errorBox(err));
    }
  });
  const row = (k, v) => [h("dt", {}, k), h("dd", {}, v)];
  fill(
    el,
    h("p", {}, h("a", { href: "#/interactions" }, "← Interactions")),
    h("h1", {}, "Interaction ", h("code", {}, i.id)),
    h(
      "dl",
      { class: "facts card" },
      row("Type", i.type),
      row("Occurred", when(i.occurred_at)),
      row("Received", when(i.received_at)),
      row("Actor", i.actor || "—"),
      row("Session", sessionLink(i.session)),
      row("Idempotency key", i.idempotency_key || "—"),
    ),
    h("h2", {}, "Content"),
    h("pre", { class: "content", id: "content" }, i.content === null ? "—" : String(i.content)),
    h("h2", {}, "Metadata"),
    h("pre", { class: "content", id: "metadata" }, i.metadata === null ? "—" : JSON.stringify(i.metadata, null, 2)),
    out,
    erase,
  );
}
