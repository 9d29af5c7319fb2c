// Webhook endpoints: alert events POSTed to the org's own receivers, signed
// with a secret that the API shows once (on creation and on rotation).
import { clearFieldErrors, confirmDialog, errorBox, field, fill, h, secretPanel, showFieldErrors, status, table, when } from "../dom.js";
import { pagedList } from "./list.js";

const EVENTS = ["alert.opened", "alert.resolved"];

/** The API's messages for `url` go beside the field; the rest below the form. */
function createForm(ctx, onCreated) {
  // A text field (not type=url): the API's own message is shown for any URL.
  const url = h("input", {
    type: "text",
    inputmode: "url",
    required: true,
    maxlength: "2048",
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "https://hooks.example.com/interlog",
  });
  const boxes = EVENTS.map((ev) => h("input", { type: "checkbox", value: ev, id: `event-${ev.replace(".", "-")}`, checked: true }));
  const inline = h("ul", { class: "field-errors", id: "webhook-url-errors", "aria-live": "assertive" });
  const out = h("div", { "aria-live": "polite" });
  const submit = h("button", { type: "submit" }, "Add webhook");
  const [urlField] = field("Endpoint URL", url, "https:// to a public host; private and internal addresses are refused.");
  urlField.append(inline);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "add-webhook-title" },
    h("h2", { id: "add-webhook-title" }, "Add a webhook"),
    urlField,
    h(
      "fieldset",
      {},
      h("legend", {}, "Events"),
      EVENTS.map((ev, i) => h("label", { class: "check", for: boxes[i].id }, boxes[i], ` ${ev}`)),
    ),
    submit,
    out,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { url: url.value.trim(), events: boxes.filter((b) => b.checked).map((b) => b.value) };
    clearFieldErrors(inline, url);
    submit.disabled = true;
    fill(out, status("Adding…"));
    try {
      const created = await ctx.api("POST", "/v1/webhooks", { body });
      fill(out);
      url.value = "";
      onCreated(secretPanel(`Signing secret of ${created.url}`, created.secret, "signing secret"));
    } catch (err) {
      showFieldErrors(out, inline, url, err, (d) => (d.field === "url" ? d.message : null));
    } finally {
      submit.disabled = false;
    }
  });
  return form;
}

function rotateButton(ctx, w, onRotated, out) {
  const btn = h("button", { type: "button" }, "Rotate secret");
  btn.setAttribute("aria-label", `Rotate secret of webhook ${w.id}`);
  btn.addEventListener("click", async () => {
    const ok = await confirmDialog(
      `Rotate the signing secret of ${w.url}?`,
      "A new secret signs from now on and is shown once. The current one keeps signing too for 24 hours, so the receiver can switch without a gap.",
      "Rotate",
    );
    if (!ok) return;
    fill(out, status("Rotating the secret…"));
    try {
      const r = await ctx.api("POST", `/v1/webhooks/${encodeURIComponent(w.id)}/rotate-secret`);
      onRotated(secretPanel(`New signing secret of ${r.url}`, r.secret, "signing secret"));
    } catch (err) {
      fill(out, errorBox(err));
    }
  });
  return btn;
}

function deleteButton(ctx, w, reload, out) {
  const btn = h("button", { type: "button", class: "danger" }, "Delete");
  btn.setAttribute("aria-label", `Delete webhook ${w.id}`);
  btn.addEventListener("click", async () => {
    const ok = await confirmDialog(
      `Delete the webhook to ${w.url}?`,
      "Nothing more is sent to it; its queued deliveries and its delivery log are deleted. This cannot be undone.",
      "Delete",
    );
    if (!ok) return;
    fill(out, status("Deleting…"));
    try {
      await ctx.api("DELETE", `/v1/webhooks/${encodeURIComponent(w.id)}`);
      reload(h("p", { class: "notice", role: "status" }, `Webhook ${w.id} deleted.`));
    } catch (err) {
      fill(out, errorBox(err));
    }
  });
  return btn;
}

export async function webhooksPage(el, ctx, notice) {
  const { webhooks } = await ctx.api("GET", "/v1/webhooks");
  if (!ctx.current()) return;
  const out = h("div", { "aria-live": "polite" }, notice || null);
  const reload = (n) => webhooksPage(el, ctx, n).catch((err) => fill(out, errorBox(err)));
  const rows = webhooks.map((w) => [
    h("span", { class: "content url" }, w.url),
    w.events.join(", "),
    h("span", { class: `state state-${w.state}` }, w.state),
    when(w.created_at),
    when(w.previous_secret_expires_at),
    h("code", {}, w.id),
    h(
      "span",
      { class: "row-actions" },
      h("a", { href: `#/webhooks/${encodeURIComponent(w.id)}`, "aria-label": `Deliveries of webhook ${w.id}` }, "Deliveries"),
      rotateButton(ctx, w, reload, out),
      deleteButton(ctx, w, reload, out),
    ),
  ]);
  fill(
    el,
    h("h1", {}, "Webhooks"),
    h(
      "p",
      { class: "hint" },
      "Alert events (alert.opened, alert.resolved) are POSTed to these endpoints, signed per Standard Webhooks. " +
        "Failed deliveries are retried for 24 hours; then the endpoint is marked failing and an alert opens. At most 10 endpoints.",
    ),
    out,
    webhooks.length
      ? table("Webhook endpoints of the org", ["URL", "Events", "State", "Created", "Previous secret signs until", "Id", "Actions"], rows)
      : status("No webhooks yet."),
    createForm(ctx, reload),
  );
}

/** One endpoint's delivery log, newest first. */
export async function deliveriesPage(el, ctx) {
  const id = ctx.arg;
  const { webhooks } = await ctx.api("GET", "/v1/webhooks");
  if (!ctx.current()) return;
  const w = webhooks.find((x) => x.id === id);
  await pagedList(el, ctx, {
    title: "Deliveries",
    caption: `Delivery attempts of webhook ${id}, newest first`,
    route: `webhooks/${encodeURIComponent(id)}`,
    path: `/v1/webhooks/${encodeURIComponent(id)}/deliveries`,
    itemsField: "deliveries",
    filters: [],
    empty: "No deliveries yet: an event is sent when an alert opens or is resolved.",
    intro: h(
      "div",
      {},
      h("p", {}, h("a", { href: "#/webhooks" }, "← Webhooks")),
      h("p", {}, "Every attempt to ", w ? h("span", { class: "content" }, w.url) : h("code", {}, id), " (the newest 1,000 are kept)."),
    ),
    headers: ["Time", "Event", "Attempt", "Status", "Duration", "Outcome", "Error", "Message id"],
    row: (d) => [
      when(d.at),
      d.event,
      String(d.attempt),
      d.status === null ? "no answer" : String(d.status),
      `${d.duration_ms} ms`,
      h("span", { class: `state state-${d.outcome}` }, d.outcome),
      d.error === null ? "—" : h("span", { class: "content" }, d.error),
      h("code", {}, d.message_id),
    ],
  });
}
