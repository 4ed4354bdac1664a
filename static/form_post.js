// Submits the OAuth 2.0 form_post response automatically (the button works without it).
document.addEventListener("DOMContentLoaded", function () {
  var form = document.getElementById("form_post");
  if (form) { form.submit(); }
});
