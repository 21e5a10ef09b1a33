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
