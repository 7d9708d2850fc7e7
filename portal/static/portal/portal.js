// Copy buttons: <button data-copy="#selector"> copies the target's value (an input) or its text.
// No framework, no network: the secret never leaves the page except into the clipboard.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy]");
  if (!button) return;
  const target = document.querySelector(button.dataset.copy);
  if (!target) return;
  const text = "value" in target ? target.value : target.textContent;
  const status = document.querySelector(".copy-status");
  let copied = false;
  try {
    await navigator.clipboard.writeText(text);
    copied = true;
  } catch (err) {
    // Older browsers or plain http: select the text so Ctrl+C works.
    if (target.select) target.select();
  }
  const label = button.textContent;
  button.textContent = copied ? "Copied" : "Press Ctrl+C";
  button.dataset.copied = copied ? "yes" : "no";
  if (status) status.textContent = copied ? "Copied to the clipboard." : "Select and copy the text.";
  setTimeout(() => { button.textContent = label; }, 2000);
});
