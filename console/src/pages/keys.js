import { confirmDialog, errorBox, field, fill, h, secretPanel, status, table, when } from "../dom.js";

const SCOPES = ["ingest", "read", "admin"];

function createForm(ctx, onCreated) {
  const name = h("input", { type: "text", required: true, maxlength: "128", autocomplete: "off" });
  const boxes = SCOPES.map((s) => h("input", { type: "checkbox", value: s, id: `scope-${s}`, checked: s === "ingest" }));
  const expires = h("input", { type: "datetime-local" });
  const out = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Create key");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "create-title" },
    h("h2", { id: "create-title" }, "Create a key"),
    field("Name", name)[0],
    h(
      "fieldset",
      {},
      h("legend", {}, "Scopes"),
      SCOPES.map((s, i) => h("label", { class: "check", for: `scope-${s}` }, boxes[i], ` ${s}`)),
    ),
    field("Expires (your local time; empty: never)", expires)[0],
    submit,
    out,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: name.value, scopes: boxes.filter((b) => b.checked).map((b) => b.value) };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    submit.disabled = true;
    fill(out, status("Creating…"));
    try {
      const created = await ctx.api("POST", "/v1/keys", { body });
      fill(out);
      name.value = "";
      onCreated(secretPanel(`New key ${created.prefix} (${created.name})`, created.key));
    } catch (err) {
      fill(out, errorBox(err));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function rotateControl(ctx, k, onRotated, out) {
  const grace = h("input", { type: "number", min: "0", max: "2592000", step: "1", value: "3600", class: "narrow" });
  grace.setAttribute("aria-label", `Grace period in seconds for key ${k.prefix}`);
  const btn = h("button", { type: "button" }, "Rotate");
  btn.setAttribute("aria-label", `Rotate key ${k.prefix}`);
  btn.addEventListener("click", async () => {
    const seconds = Number(grace.value);
    const ok = await confirmDialog(
      `Rotate key ${k.prefix}?`,
      `A successor with the same scopes is created. The old key keeps working for ${seconds} seconds (never past its own expiry), then stops.`,
      "Rotate",
    );
    if (!ok) return;
    fill(out, status(`Rotating ${k.prefix}…`));
    try {
      const r = await ctx.api("POST", `/v1/keys/${encodeURIComponent(k.prefix)}/rotate`, { body: { grace_seconds: seconds } });
      onRotated(secretPanel(`Successor ${r.prefix} of ${k.prefix}`, r.key));
    } catch (err) {
      fill(out, errorBox(err));
    }
  });
  return h("span", { class: "inline" }, h("span", { class: "hint" }, "grace s"), grace, btn);
}

function revokeButton(ctx, k, reload, out) {
  const btn = h("button", { type: "button", class: "danger" }, "Revoke");
  btn.setAttribute("aria-label", `Revoke key ${k.prefix}`);
  btn.addEventListener("click", async () => {
    const ok = await confirmDialog(
      `Revoke key ${k.prefix}?`,
      `"${k.name}" stops working on its very next request. This cannot be undone.`,
      "Revoke",
    );
    if (!ok) return;
    fill(out, status(`Revoking ${k.prefix}…`));
    try {
      await ctx.api("POST", `/v1/keys/${encodeURIComponent(k.prefix)}/revoke`);
      reload(h("p", { class: "notice", role: "status" }, `Key ${k.prefix} revoked.`));
    } catch (err) {
      fill(out, errorBox(err));
    }
  });
  return btn;
}

export async function keysPage(el, ctx, notice) {
  const { keys } = await ctx.api("GET", "/v1/keys");
  if (!ctx.current()) return;
  const out = h("div", { "aria-live": "polite" }, notice || null);
  const reload = (n) => keysPage(el, ctx, n).catch((err) => fill(out, errorBox(err)));
  const rows = keys.map((k) => [
    h("code", {}, k.prefix),
    k.name,
    k.scopes.join(", "),
    h("span", { class: `state state-${k.state}` }, k.state),
    when(k.created_at),
    when(k.last_used_at),
    when(k.expires_at),
    k.replaced_by ? h("code", {}, k.replaced_by) : "—",
    k.state === "active"
      ? h("span", { class: "row-actions" }, revokeButton(ctx, k, reload, out), rotateControl(ctx, k, reload, out))
      : "—",
  ]);
  fill(
    el,
    h("h1", {}, "Keys"),
    out,
    table("Keys of the org", ["Prefix", "Name", "Scopes", "State", "Created", "Last used", "Expires", "Replaced by", "Actions"], rows),
    createForm(ctx, reload),
  );
}
