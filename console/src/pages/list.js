// A keyset-paged list: filters form, table, "Load more" with a running count.
import { errorBox, field, fill, h, status, table } from "../dom.js";

/**
 * spec: { title, caption, path, itemsField, filters: [{ name, label, input }],
 *         headers, row(item, reload, out), limit, intro, empty }
 * (no filters: no filter form; `empty`: the text when nothing is listed)
 * `notice` (optional) is shown above the list, e.g. after an action reloaded it.
 * Filter values come from and go to the page's hash query, so a filtered
 * view can be linked to.
 */
export async function pagedList(el, ctx, spec, notice) {
  const values = {};
  for (const f of spec.filters) {
    values[f.name] = ctx.params.get(f.name) || "";
    f.input.value = values[f.name];
  }
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": `Filter ${spec.title.toLowerCase()}` },
    spec.filters.map((f) => field(f.label, f.input, f.hint)[0]),
    h("button", { type: "submit" }, "Apply filters"),
  );
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const f of spec.filters) if (f.input.value.trim()) q.set(f.name, f.input.value.trim());
    if (ctx.params.get("limit")) q.set("limit", ctx.params.get("limit"));
    ctx.go(`#/${spec.route}${q.toString() ? "?" + q : ""}`);
  });
  const tbody = h("tbody");
  const progress = h("p", { class: "status", role: "status" });
  const more = h("button", { type: "button", class: "more" }, "Load more");
  const out = h("div", { "aria-live": "polite" }, notice || null);
  const tableEl = table(spec.caption, spec.headers, []);
  tableEl.querySelector("tbody").replaceWith(tbody);
  const asked = Number(ctx.params.get("limit"));
  const limit = Number.isInteger(asked) && asked >= 1 && asked <= 200 ? asked : spec.limit || 50;
  let cursor = null;
  let shown = 0;
  const query = {};
  for (const f of spec.filters) if (values[f.name]) query[f.name] = values[f.name];
  const reload = (n) => pagedList(el, ctx, spec, n).catch((err) => fill(out, errorBox(err)));

  async function page() {
    more.disabled = true;
    progress.textContent = `Loading… (${shown} shown so far)`;
    const data = await ctx.api("GET", spec.path, { query: { ...query, limit, cursor: cursor || undefined } });
    if (!ctx.current()) return;
    for (const item of data[spec.itemsField]) {
      tbody.append(h("tr", {}, spec.row(item, reload, out).map((c) => h("td", {}, c))));
      shown += 1;
    }
    cursor = data.next_cursor;
    more.hidden = !cursor;
    more.disabled = false;
    progress.textContent = shown === 0 ? spec.empty || "Nothing matches." : `${shown} shown${cursor ? "; more follow" : " (all)"}.`;
  }

  await page();
  if (!ctx.current()) return;
  more.addEventListener("click", () =>
    page().catch((err) => {
      more.disabled = false;
      fill(out, errorBox(err));
    }),
  );
  fill(el, h("h1", {}, spec.title), spec.intro || null, spec.filters.length ? form : null, out, tableEl, progress, more);
}

/** A select with the given options ("" first = any). */
export function select(options, anyLabel = "any") {
  return h("select", {}, h("option", { value: "" }, anyLabel), options.map((o) => h("option", { value: o }, o)));
}
