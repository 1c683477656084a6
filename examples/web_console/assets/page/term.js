// The terminal page: xterm.js over a websocket speaking oobkit.term.v1 (see docs/web-console.md).
// The one-time link's id arrives in the URL fragment (never sent to a server) and travels to the
// console as a websocket subprotocol; the fragment is removed from the address bar at once.
"use strict";
(function () {
  const OUTPUT = 0, INPUT = 1, RESIZE = 2, ACK = 3, PING = 4, PONG = 5, CLOSE = 6;
  // Rendered bytes are acknowledged in batches of this size, or after ACK_DELAY ms.
  const ACK_BATCH = 16384, ACK_DELAY = 50;
  const status = document.getElementById("status");
  const latency = document.getElementById("latency");
  const again = document.getElementById("again");
  const id = location.hash.slice(1);
  history.replaceState(null, "", location.pathname);

  const term = new Terminal({ cursorBlink: true, scrollback: 5000, fontFamily: "monospace" });
  const fit = new FitAddon.FitAddon();
  term.loadAddon(fit);
  term.open(document.getElementById("terminal"));
  fit.fit();
  term.focus();
  // For tests and for people: the terminal and the session's state.
  window.term = term;
  window.consoleState = { state: "connecting", reason: "", rendered: 0, latencyMs: null };

  const setState = (state, text) => {
    window.consoleState.state = state;
    if (text !== undefined) window.consoleState.reason = text;
    status.dataset.state = state;
    status.textContent = text ? state + ": " + text : state;
    if (state === "closed") {
      again.hidden = false;
      term.options.cursorBlink = false;
    }
  };
  again.addEventListener("click", () => location.assign("/"));

  if (!/^[A-Za-z0-9_-]{22}$/.test(id)) {
    setState("closed", "this page needs a session link: create a session first");
    return;
  }
  const url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/ws";
  const ws = new WebSocket(url, ["oobkit.term.v1", "oobkit.session." + id]);
  ws.binaryType = "arraybuffer";
  let closedByServer = false;
  const encoder = new TextEncoder();

  const frame = (type, payloadLength) => {
    const bytes = new Uint8Array(1 + payloadLength);
    bytes[0] = type;
    return bytes;
  };
  const send = (bytes) => {
    if (ws.readyState === WebSocket.OPEN) ws.send(bytes);
  };
  const sendResize = () => {
    const bytes = frame(RESIZE, 4);
    const view = new DataView(bytes.buffer);
    view.setUint16(1, term.cols);
    view.setUint16(3, term.rows);
    send(bytes);
  };
  const sendStamp = (type, stamp) => {
    const bytes = frame(type, 8);
    new DataView(bytes.buffer).setBigUint64(1, stamp);
    send(bytes);
  };
  const sendInput = (data) => {
    const payload = typeof data === "string" ? encoder.encode(data) : data;
    const bytes = frame(INPUT, payload.length);
    bytes.set(payload, 1);
    send(bytes);
  };

  // Credit: bytes rendered (xterm.js's write callback) and not yet acknowledged.
  let unacked = 0;
  let ackTimer = null;
  const flushAck = () => {
    ackTimer = null;
    if (unacked === 0) return;
    const bytes = frame(ACK, 4);
    new DataView(bytes.buffer).setUint32(1, unacked);
    unacked = 0;
    send(bytes);
  };
  const rendered = (n) => {
    unacked += n;
    window.consoleState.rendered += n;
    if (unacked >= ACK_BATCH) flushAck();
    else if (ackTimer === null) ackTimer = setTimeout(flushAck, ACK_DELAY);
  };

  ws.addEventListener("open", () => {
    setState("open");
    sendResize();
  });
  ws.addEventListener("message", (event) => {
    const bytes = new Uint8Array(event.data);
    if (bytes.length === 0) return;
    const view = new DataView(event.data);
    switch (bytes[0]) {
      case OUTPUT: {
        const payload = bytes.subarray(1);
        const n = payload.length;
        term.write(payload, () => rendered(n));
        break;
      }
      case PING:
        if (bytes.length === 9) sendStamp(PONG, view.getBigUint64(1));
        break;
      case PONG:
        if (bytes.length === 9) {
          const ms = performance.now() - Number(view.getBigUint64(1)) / 1000;
          window.consoleState.latencyMs = ms;
          latency.textContent = ms.toFixed(1) + " ms";
        }
        break;
      case CLOSE: {
        closedByServer = true;
        const code = bytes.length >= 3 ? view.getUint16(1) : 0;
        const reason = new TextDecoder().decode(bytes.subarray(3));
        window.consoleState.code = code;
        setState("closed", reason || "closed");
        term.write("\r\n\x1b[2m[" + (reason || "closed") + "]\x1b[0m\r\n");
        break;
      }
    }
  });
  ws.addEventListener("close", () => {
    if (closedByServer) return;
    if (window.consoleState.state === "connecting") {
      setState("closed", "the console refused this link: it was used already, expired, or never existed");
    } else {
      setState("closed", "the connection to the console was lost");
    }
  });
  term.onData(sendInput);
  term.onBinary((data) => sendInput(Uint8Array.from(data, (c) => c.charCodeAt(0))));
  term.onResize(sendResize);
  window.addEventListener("resize", () => fit.fit());
  // The page's own pings show the round trip (a stamp in microseconds of performance.now()).
  setInterval(() => sendStamp(PING, BigInt(Math.round(performance.now() * 1000))), 5000);
})();
