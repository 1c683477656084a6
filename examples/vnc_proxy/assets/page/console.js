// The console page: noVNC (served by this proxy, never from a CDN) on the websocket
// /[PREFIX/]TOKEN/VMI given as ?path=..., as LabOrchestrator's LabVNC page passes it.
import RFB from './novnc/core/rfb.js';

const status = document.getElementById('status');
const path = (new URLSearchParams(location.search).get('path') || '').replace(/^\/+/, '');
const scheme = location.protocol === 'https:' ? 'wss://' : 'ws://';

function say(text, state) {
    status.textContent = text;
    document.body.dataset.state = state;
}

// Why the proxy refuses (or ended) this path: the same path asked as a check, which answers
// with the gate's reason instead of an upgrade a browser cannot read.
async function reason() {
    try {
        const reply = await fetch('/' + path, { headers: { 'X-Vnc-Proxy-Check': '1' }, cache: 'no-store' });
        const body = await reply.json();
        return reply.ok ? null : (body.reason || ('HTTP ' + reply.status));
    } catch (e) {
        return null;
    }
}

if (!path) {
    say('no console given: open this page as vnc.html?path=TOKEN/VMI', 'refused');
} else {
    let connected = false;
    const rfb = new RFB(document.getElementById('screen'), scheme + location.host + '/' + path,
                        { wsProtocols: ['binary'] });
    rfb.scaleViewport = true;
    rfb.addEventListener('connect', () => {
        connected = true;
        say('connected', 'connected');
    });
    rfb.addEventListener('desktopname', (e) => {
        document.title = e.detail.name;
        document.body.dataset.desktop = e.detail.name;
        if (connected) say('connected: ' + e.detail.name, 'connected');
    });
    rfb.addEventListener('disconnect', async () => {
        const why = await reason();
        if (!connected) {
            say('refused: ' + (why || 'the console could not be reached'), 'refused');
        } else {
            say('disconnected' + (why ? ': ' + why : ''), 'disconnected');
        }
    });
    window.vncProxyRfb = rfb;
}
