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

// The AMTs this console offers: status, serial console, screen (with user consent when the
// AMT wants it), power.
(function () {
  const TOKEN_KEY = "web_console_token";
  const list = document.getElementById("amt-list");
  const section = document.getElementById("amts");
  const headers = (json) => {
    const h = json ? { "Content-Type": "application/json" } : {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) h.Authorization = "Bearer " + token;
    return h;
  };
  const post = async (url, body) => {
    const reply = await fetch(url, { method: "POST", headers: headers(true), body: JSON.stringify(body), credentials: "same-origin" });
    const answer = await reply.json().catch(() => ({}));
    if (!reply.ok) throw new Error(answer.reason || "the console answered " + reply.status);
    return answer;
  };
  const el = (tag, attrs, text) => {
    const e = document.createElement(tag);
    Object.assign(e, attrs || {});
    if (text !== undefined) e.textContent = text;
    return e;
  };
  const open = async (name, kind, message) => {
    try {
      const answer = await post("/sessions", { target: name, kind });
      location.assign(answer.url);
    } catch (e) {
      message.textContent = e.message;
    }
  };
  const render = (amt) => {
    const box = el("div", { className: "amt" });
    box.dataset.name = amt.name;
    box.appendChild(el("h3", {}, amt.name));
    const message = el("div", { className: "message" });
    if (!amt.reachable) {
      box.appendChild(el("div", { className: "facts" }, "not reachable: " + amt.error));
      box.appendChild(message);
      return box;
    }
    const facts = el("div", { className: "facts" },
      "power: " + amt.power + " · serial console " + (amt.sol ? "enabled" : "disabled") +
      " · KVM " + (amt.kvm ? "enabled" : "disabled") + " · user consent " + amt.consent +
      (amt.firmware ? " · firmware " + amt.firmware : ""));
    facts.dataset.power = amt.power;
    box.appendChild(facts);
    const sol = el("button", { className: "sol", disabled: !amt.sol }, "Serial console");
    sol.addEventListener("click", () => open(amt.name, "sol", message));
    box.appendChild(sol);
    const kvm = el("button", { className: "kvm", disabled: !amt.kvm }, "Screen");
    const consent = el("div", { className: "consent", hidden: true });
    const code = el("input", { className: "code", inputMode: "numeric", placeholder: "6-digit code", maxLength: 6 });
    const send = el("button", { className: "send-code" }, "Send code");
    consent.append(el("span", {}, "Code shown on the managed screen: "), code, send);
    kvm.addEventListener("click", async () => {
      message.textContent = "";
      // Consent needed and not given: ask the AMT to show a code, and the person to type it.
      if (amt.consent_for_kvm && amt.consent_state < 3) {
        try {
          await post("/targets/" + encodeURIComponent(amt.name) + "/consent", { start: true });
          consent.hidden = false;
          code.focus();
          message.textContent = "the AMT wants user consent: type the code shown on its screen";
        } catch (e) {
          message.textContent = e.message;
        }
        return;
      }
      open(amt.name, "kvm", message);
    });
    send.addEventListener("click", async () => {
      try {
        await post("/targets/" + encodeURIComponent(amt.name) + "/consent", { code: Number(code.value) });
        consent.hidden = true;
        open(amt.name, "kvm", message);
      } catch (e) {
        message.textContent = "the code was refused: " + e.message;
      }
    });
    box.appendChild(kvm);
    for (const action of ["on", "off", "cycle"]) {
      const b = el("button", { className: "power power-" + action }, "Power " + action);
      b.addEventListener("click", async () => {
        try {
          await post("/targets/" + encodeURIComponent(amt.name) + "/power", { action });
          message.textContent = "power " + action + " sent";
          setTimeout(refresh, 1000);
        } catch (e) {
          message.textContent = e.message;
        }
      });
      box.appendChild(b);
    }
    box.append(consent, message);
    return box;
  };
  const renderVnc = (servers) => {
    document.getElementById("vnc").hidden = servers.length === 0;
    document.getElementById("vnc-list").replaceChildren(...servers.map((name) => {
      const row = el("div", { className: "amt vnc-server" });
      row.dataset.name = name;
      row.appendChild(el("h3", {}, name));
      const message = el("div", { className: "message" });
      const screen = el("button", { className: "screen" }, "Screen");
      screen.addEventListener("click", async () => {
        try {
          const answer = await post("/sessions", { vnc: name });
          location.assign(answer.url);
        } catch (e) {
          message.textContent = e.message;
        }
      });
      row.append(screen, message);
      return row;
    }));
  };
  const renderRrmt = (rrmt) => {
    const box = document.getElementById("rrmt");
    const hosts = document.getElementById("rrmt-list");
    box.hidden = !rrmt;
    if (!rrmt) return;
    if (!rrmt.reachable) {
      hosts.replaceChildren(el("div", { className: "message" }, "the RRMT server cannot be reached: " + rrmt.error));
      return;
    }
    hosts.replaceChildren(...rrmt.hosts.map((host) => {
      const row = el("div", { className: "amt rrmt-host" });
      row.dataset.name = host.name;
      row.dataset.online = host.online;
      row.appendChild(el("h3", {}, host.name));
      row.appendChild(el("div", { className: "facts" }, host.revoked ? "token revoked" : host.online ? "agent online" : "agent offline"));
      const message = el("div", { className: "message" });
      const shell = el("button", { className: "shell", disabled: !host.online || host.revoked }, "Shell");
      shell.addEventListener("click", async () => {
        try {
          const answer = await post("/sessions", { rrmt_host: host.name });
          location.assign(answer.url);
        } catch (e) {
          message.textContent = e.message;
        }
      });
      row.append(shell, message);
      return row;
    }));
  };
  const refresh = async () => {
    try {
      const reply = await fetch("/targets", { headers: headers(false), credentials: "same-origin" });
      if (!reply.ok) return;
      const answer = await reply.json();
      window.consoleTargets = answer;
      list.replaceChildren(...answer.amts.map(render));
      section.hidden = answer.amts.length === 0;
      renderRrmt(answer.rrmt);
      renderVnc(answer.vnc || []);
    } catch (e) {
      // The SSH form still works without the inventory.
    }
  };
  window.refreshTargets = refresh;
  refresh();
})();
