// The test page's side: one lib-jitsi-meet connection and conference, driven
// by tests/js/jitsi/meet.test.js through page.evaluate. Every conference and
// connection event is kept in window.meet.events as [name, ...printable args].
/* global JitsiMeetJS */
(function () {
  const events = [];
  const printable = (v) => {
    if (v === undefined || v === null || typeof v !== 'object') return v;
    if (typeof v.getId === 'function') return { participant: v.getId(), name: v.getDisplayName && v.getDisplayName() };
    // A recording session (RECORDER_STATE_CHANGED).
    if (typeof v.getStatus === 'function') return { session: v.getID && v.getID(), status: v.getStatus(), mode: v.getMode && v.getMode() };
    if (v.nodeType) return new XMLSerializer().serializeToString(v);
    try { return JSON.parse(JSON.stringify(v)); } catch (e) {
      // e.g. { enabled, mediaType, actor: JitsiParticipant }: one level down
      if (Object.getPrototypeOf(v) !== Object.prototype) return String(v);
      return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, printable(x)]));
    }
  };
  const record = (name) => (...args) => events.push([name, ...args.map(printable)]);

  window.meet = {
    events,
    trace: [],
    // Disco queries this page sent that got no answer yet: id -> description.
    disco: new Map(),
    connection: null,
    conference: null,

    // options: { serviceUrl, hosts, room, credentials?, config? }; resolves once connected.
    connect(options) {
      JitsiMeetJS.init({ disableAudioLevels: true });
      JitsiMeetJS.setLogLevel(JitsiMeetJS.logLevels.WARN);
      const JitsiConnectionEvents = JitsiMeetJS.events.connection;
      const connection = new JitsiMeetJS.JitsiConnection(null, null, {
        hosts: options.hosts,
        serviceUrl: options.serviceUrl,
        clientNode: 'https://jitsi.org/jitsi-meet',
      });
      this.connection = connection;
      // The last stanzas in and out, for failure reports.
      const trace = (way) => (element) => {
        this.trace.push(`${Date.now()} ${way} ${new XMLSerializer().serializeToString(element)}`);
        if (this.trace.length > 200) this.trace.shift();
        // Disco queries and their answers (BOSH wraps stanzas in <body/>).
        const iqs = element.nodeName === 'iq' ? [element] : Array.from(element.getElementsByTagName('iq'));
        for (const iq of iqs) {
          const id = iq.getAttribute('id');
          if (way === 'OUT' && iq.getAttribute('type') === 'get') {
            const query = iq.getElementsByTagName('query')[0];
            const ns = query && query.getAttribute('xmlns');
            if (ns && ns.startsWith('http://jabber.org/protocol/disco#')) {
              this.disco.set(id, `${ns.slice(-4)} to=${iq.getAttribute('to')} node=${query.getAttribute('node')}`);
            }
          } else if (way === 'IN' && ['result', 'error'].includes(iq.getAttribute('type'))) {
            this.disco.delete(id);
          }
        }
      };
      const strophe = connection.xmpp.connection._stropheConn || connection.xmpp.connection;
      strophe.xmlInput = trace('IN');
      strophe.xmlOutput = trace('OUT');
      return new Promise((ok, fail) => {
        connection.addEventListener(JitsiConnectionEvents.CONNECTION_ESTABLISHED, (id) => {
          events.push(['connection.established', id]);
          ok(connection.xmpp.connection.jid);
        });
        connection.addEventListener(JitsiConnectionEvents.CONNECTION_FAILED, (...args) => {
          events.push(['connection.failed', ...args.map(printable)]);
          fail(new Error(`connection failed: ${args.map(String).join(' ')}`));
        });
        connection.connect(options.credentials || {});
      });
    },

    // Joins the room; with withTracks, the fake camera and microphone are added
    // first.
    // config.displayName, if given, is set before joining (as Jitsi Meet's prejoin does).
    async join(room, config, withTracks) {
      const { displayName, ...options } = config || {};
      const conference = this.connection.initJitsiConference(room, {
        p2p: { enabled: false },
        disableSimulcast: true,
        ...options,
      });
      if (displayName) conference.setDisplayName(displayName);
      this.conference = conference;
      for (const name of Object.values(JitsiMeetJS.events.conference)) {
        if (name !== 'conference.audioLevelsChanged') conference.on(name, record(name));
      }
      let tracks = [];
      if (withTracks) try {
        tracks = await JitsiMeetJS.createLocalTracks({ devices: ['audio', 'video'] });
      } catch (e) {
        events.push(['tracks.failed', String(e)]);
      }
      for (const track of tracks) await conference.addTrack(track);
      events.push(['tracks', tracks.map((t) => t.getType())]);
      conference.join();
    },

    names() {
      return events.map((e) => e[0]);
    },

    // Stanzas received on the library's XMPP connection from `from` (a
    // component address), kept serialized in window.meet.received.
    received: [],
    listen(from) {
      this.connection.xmpp.connection.addHandler((stanza) => {
        this.received.push(new XMLSerializer().serializeToString(stanza));
        return true;
      }, null, 'message', null, null, from);
    },

    // Sends a stanza (XML text, in jabber:client) on the library's XMPP
    // connection, as newer Jitsi Meet clients send to the components.
    send(text) {
      const stanza = new DOMParser().parseFromString(text, 'text/xml').documentElement;
      this.connection.xmpp.connection.send(stanza);
    },

    // What this page receives from each other participant over the bridge:
    // { <participant id>: { audio: { ssrc, packetsReceived }, video: { ssrc,
    // framesDecoded, frameWidth } } }, read from the JVB peer connection's
    // getStats() and matched to participants by the SSRC the focus signalled.
    async mediaStats() {
      const session = this.conference && this.conference.jvbJingleSession;
      const pc = session && session.peerconnection && session.peerconnection.peerconnection;
      if (!pc) return {};
      const owners = new Map();
      for (const participant of this.conference.getParticipants()) {
        for (const track of participant.getTracks()) {
          const ssrc = track.getSSRC && track.getSSRC();
          if (ssrc) owners.set(Number(ssrc), [participant.getId(), track.getType()]);
        }
      }
      const out = {};
      (await pc.getStats()).forEach((report) => {
        if (report.type !== 'inbound-rtp' || !owners.has(report.ssrc)) return;
        const [id, kind] = owners.get(report.ssrc);
        out[id] = out[id] || {};
        out[id][kind] = kind === 'video'
          ? { ssrc: report.ssrc, framesDecoded: report.framesDecoded || 0, frameWidth: report.frameWidth || 0,
            frameHeight: report.frameHeight || 0 }
          : { ssrc: report.ssrc, packetsReceived: report.packetsReceived || 0 };
      });
      return out;
    },

    // The address of the bridge this page's media goes to: the remote
    // candidate of the JVB peer connection's selected candidate pair.
    async bridgeAddress() {
      const session = this.conference && this.conference.jvbJingleSession;
      const pc = session && session.peerconnection && session.peerconnection.peerconnection;
      if (!pc) return null;
      const reports = new Map();
      (await pc.getStats()).forEach((r) => reports.set(r.id, r));
      const transport = [...reports.values()].find((r) => r.type === 'transport' && r.selectedCandidatePairId);
      const pair = transport && reports.get(transport.selectedCandidatePairId);
      const remote = pair && reports.get(pair.remoteCandidateId);
      return remote ? remote.address || remote.ip || null : null;
    },

    // Mutes or unmutes this page's microphone.
    async setAudioMuted(muted) {
      const track = this.conference.getLocalAudioTrack();
      if (track) await (muted ? track.mute() : track.unmute());
    },

    async leave() {
      if (this.conference) await this.conference.leave().catch(() => {});
      if (this.connection) this.connection.disconnect();
    },
  };
}());
