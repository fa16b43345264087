// The login page: say so when the last key was refused, and come back where we were.
"use strict";
const params = new URLSearchParams(location.search);
if (params.has("failed")) document.getElementById("failed").hidden = false;
const next = params.get("next");
if (next && next.startsWith("/") && !next.startsWith("//")) {
  document.getElementById("login").action = "/login?next=" + encodeURIComponent(next);
}
