// Shared by every console page: tell the server the browser's time zone (for dates).
"use strict";
(function () {
  try {
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (zone && !document.cookie.split("; ").includes("pb_tz=" + encodeURIComponent(zone))) {
      document.cookie = "pb_tz=" + encodeURIComponent(zone) + "; path=/; max-age=31536000; samesite=strict";
    }
  } catch (_) { /* no Intl: the server shows UTC */ }
})();

// The CSRF token of this page, for fetch() calls (forms carry it as a hidden field).
window.pbCsrf = function () {
  const field = document.querySelector('input[name="csrf_token"]');
  return field ? field.value : "";
};

// After a failed save the page comes back with its problems marked: keyboard and screen
// reader users start at the first one instead of the top of the page.
(function () {
  const first = document.querySelector(
    'main [aria-invalid="true"]:not([type="hidden"]):not(:disabled), ' +
    'main fieldset.invalid :is(input, select, textarea):not([type="hidden"]):not(:disabled)'
  );
  if (first) first.focus();
})();
