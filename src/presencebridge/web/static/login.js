// The demo prints a link /#token=…: sign in with it at once, and keep it out of the history.
"use strict";
(function () {
  const params = new URLSearchParams(location.hash.slice(1));
  const token = params.get("token");
  const form = document.getElementById("login-form");
  if (!token || !form) return;
  history.replaceState(null, "", location.pathname + location.search);
  form.querySelector("#token").value = token;
  form.submit();
})();
