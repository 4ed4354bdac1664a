// The admin console's one enhancement: the sign-in preview on the settings page follows the
// branding fields as they are typed (without it, the "Preview" button shows the same on the
// server). No inline script or style: the colour is set through the CSSOM.
"use strict";
(function () {
  const preview = document.querySelector(".brand-preview");
  if (!preview) return;
  const name = document.getElementById("display_name");
  const logo = document.getElementById("logo_url");
  const accent = document.getElementById("accent_color");
  const title = preview.querySelector("[data-preview-name]");
  const image = preview.querySelector("[data-preview-logo]");
  const fallback = preview.getAttribute("data-default-name") || "";
  function update() {
    if (accent && /^#[0-9a-fA-F]{6}$/.test(accent.value)) {
      preview.style.setProperty("--accent", accent.value);
    }
    if (title && name) title.textContent = name.value.trim() || fallback;
    if (image && logo) {
      const url = logo.value.trim();
      if (url.startsWith("https://")) {
        image.src = url;
        image.alt = (name && name.value.trim()) || fallback;
        image.hidden = false;
        if (title) title.hidden = true;
      } else {
        image.hidden = true;
        image.removeAttribute("src");
        if (title) title.hidden = false;
      }
    }
  }
  for (const field of [name, logo, accent]) {
    if (field) field.addEventListener("input", update);
  }
})();
