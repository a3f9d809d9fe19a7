// kretry console: a few lines of plain JavaScript, no build step. Refresh the parts that say so; select all rows.
"use strict";
document.querySelectorAll("[data-refresh]").forEach((el) => {
  const every = Number(el.dataset.every || 3000);
  setInterval(async () => {
    try {
      const answer = await fetch(el.dataset.refresh, { credentials: "same-origin" });
      if (answer.ok) el.innerHTML = await answer.text(); // the server's own escaped HTML
    } catch (e) {
      // the next tick tries again
    }
  }, every);
});
const all = document.getElementById("select-all");
if (all) {
  all.addEventListener("change", () => {
    document.querySelectorAll('#dead-table input[name="offset"]').forEach((box) => { box.checked = all.checked; });
  });
}
