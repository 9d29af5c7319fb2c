import { clearFieldErrors, field, fill, h, showFieldErrors, status } from "../dom.js";

/** The API's per-entry message (`allowed_origins[i]`) as shown beside the
 * list, or null for a detail about anything else. */
function originError(d, lines) {
  const m = /^allowed_origins\[(\d+)\]$/.exec(d.field || "");
  return m ? `Line ${Number(m[1]) + 1} (${lines[Number(m[1])] ?? ""}): ${d.message}` : null;
}

export async function settingsPage(el, ctx) {
  const org = await ctx.api("GET", "/v1/org");
  if (!ctx.current()) return;
  const name = h("input", { type: "text", maxlength: "128", required: true, value: org.name, autocomplete: "off" });
  const origins = h("textarea", { rows: "6", spellcheck: "false", autocomplete: "off" });
  origins.value = org.allowed_origins.join("\n");
  const inline = h("ul", { class: "field-errors", id: "origins-errors", "aria-live": "assertive" });
  const out = h("div", { "aria-live": "polite" });
  const save = h("button", { type: "submit" }, "Save settings");
  const [originsField] = field(
    "Allowed origins (one per line)",
    origins,
    "Browser origins that may call the API with this org's keys, e.g. https://app.example.com",
  );
  originsField.append(inline);
  const form = h(
    "form",
    { class: "card", "aria-labelledby": "settings-title" },
    h("h1", { id: "settings-title" }, "Org settings"),
    field("Name", name)[0],
    originsField,
    save,
    out,
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const lines = origins.value
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l);
    clearFieldErrors(inline, origins);
    save.disabled = true;
    fill(out, status("Saving…"));
    try {
      const updated = await ctx.api("PATCH", "/v1/org", { body: { name: name.value, allowed_origins: lines } });
      origins.value = updated.allowed_origins.join("\n");
      fill(out, h("p", { class: "notice", role: "status" }, "Saved."));
    } catch (err) {
      showFieldErrors(out, inline, origins, err, (d) => originError(d, lines));
    } finally {
      save.disabled = false;
    }
  });
  fill(el, form);
}
