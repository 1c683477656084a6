// The login page: posts the target and credential to /sessions with the console's bearer
// token (from this page's URL fragment, which browsers never send to a server) and opens the
// one-time link it gets back.
"use strict";
(function () {
  const TOKEN_KEY = "web_console_token";
  const FORM_KEY = "web_console_last";
  const hash = new URLSearchParams(location.hash.slice(1));
  if (hash.get("token")) {
    sessionStorage.setItem(TOKEN_KEY, hash.get("token"));
    history.replaceState(null, "", location.pathname);
  }
  const $ = (id) => document.getElementById(id);
  const last = JSON.parse(sessionStorage.getItem(FORM_KEY) || "{}");
  for (const field of ["host", "port", "user"]) {
    if (last[field]) $(field).value = last[field];
  }
  const showMethod = () => {
    const key = document.querySelector("input[name=method]:checked").value === "key";
    document.querySelectorAll(".key").forEach((e) => (e.hidden = !key));
    document.querySelectorAll(".password").forEach((e) => (e.hidden = key));
  };
  document.querySelectorAll("input[name=method]").forEach((e) => e.addEventListener("change", showMethod));
  showMethod();
  $("login").addEventListener("submit", async (event) => {
    event.preventDefault();
    $("error").textContent = "";
    const body = { host: $("host").value.trim(), port: Number($("port").value || 22), user: $("user").value.trim() };
    if (document.querySelector("input[name=method]:checked").value === "key") {
      body.private_key = $("private_key").value;
      if ($("passphrase").value) body.passphrase = $("passphrase").value;
    } else {
      body.password = $("password").value;
    }
    sessionStorage.setItem(FORM_KEY, JSON.stringify({ host: body.host, port: body.port, user: body.user }));
    const headers = { "Content-Type": "application/json" };
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers.Authorization = "Bearer " + token;
    try {
      const reply = await fetch("/sessions", { method: "POST", headers, body: JSON.stringify(body), credentials: "same-origin" });
      const answer = await reply.json().catch(() => ({}));
      if (reply.status === 201 && answer.url) {
        $("password").value = "";
        $("private_key").value = "";
        location.assign(answer.url);
      } else {
        $("error").textContent = answer.reason || "the console answered " + reply.status;
      }
    } catch (e) {
      $("error").textContent = "the console cannot be reached: " + e;
    }
  });
})();
