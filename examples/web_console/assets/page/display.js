// The screen page: noVNC (served by this console from its binary) on /ws/display, the
// one-time link's id (from the URL fragment, never sent to a server) in a subprotocol.
import RFB from '/novnc/core/rfb.js';

const status = document.getElementById('status');
const again = document.getElementById('again');
const id = location.hash.slice(1);
history.replaceState(null, '', location.pathname);
again.addEventListener('click', () => location.assign('/'));

function say(text, state) {
  status.textContent = text;
  document.body.dataset.state = state;
  if (state !== 'connecting' && state !== 'connected') again.hidden = false;
}

if (!/^[A-Za-z0-9_-]{22}$/.test(id)) {
  say('this page needs a session link: open the screen from the console\'s home page', 'refused');
} else {
  let connected = false;
  let closeReason = '';
  const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';
  // Our own websocket, handed to noVNC, so the console's close reason can be shown.
  const ws = new WebSocket(scheme + location.host + '/ws/display', ['binary', 'oobkit.session.' + id]);
  ws.addEventListener('close', (e) => { closeReason = e.reason; });
  const rfb = new RFB(document.getElementById('screen'), ws);
  rfb.scaleViewport = true;
  rfb.addEventListener('connect', () => { connected = true; say('connected', 'connected'); });
  rfb.addEventListener('desktopname', (e) => {
    document.title = e.detail.name;
    document.body.dataset.desktop = e.detail.name;
  });
  rfb.addEventListener('disconnect', () => {
    if (closeReason) {
      say('refused: ' + closeReason, 'refused');
    } else if (!connected) {
      say('refused: this link was used already or expired: open the screen again from the ' +
          'console\'s home page', 'refused');
    } else {
      say('disconnected: the AMT ended the screen (it allows one viewer, ends idle ones, and ' +
          'ends a screen too large for its display buffer: then lower the colour depth or ' +
          'the resolution of the managed machine)', 'disconnected');
    }
  });
  window.consoleRfb = rfb;
}
