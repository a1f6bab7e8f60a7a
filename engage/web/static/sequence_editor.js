// The sequence editor's variable picker: a button puts its variable at the cursor of its text box, and the
// box's "input" event makes htmx check the text again (no inline scripts: CSP).
(function () {
  document.addEventListener("click", function (e) {
    var button = e.target.closest("button[data-insert]");
    if (!button) return;
    var box = document.getElementById(button.dataset.target);
    if (!box) return;
    var start = box.selectionStart || 0, end = box.selectionEnd || 0, code = button.dataset.insert;
    box.value = box.value.slice(0, start) + code + box.value.slice(end);
    box.focus();
    box.selectionStart = box.selectionEnd = start + code.length;
    box.dispatchEvent(new Event("input", { bubbles: true }));
  });
})();
