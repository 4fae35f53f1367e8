// The XMPP side of Jicofo, the Videobridge and Jibri, written here from their
// documented protocol (they cannot be installed on this machine), as
// @xmpp/client users of lilt over WebSocket:
//
// - Focus (Jicofo): `focus@auth.<domain>`; accepts client_proxy's presence
//   subscription; answers `<conference xmlns='http://jitsi.org/protocol/focus'/>`
//   IQs arriving through `focus.<domain>` by joining the room as `focus` and
//   replying `ready='true'` with its `focusjid`; for each participant that joins
//   it allocates an endpoint on a bridge found in the brewery (Colibri2
//   `<conference-modify/>` to the bridge's real JID) and sends a Jingle
//   `session-initiate` carrying the bridge's ICE/DTLS transport to the
//   participant's occupant JID, then records the participant's `session-accept`.
//   Where the main domain authenticates (the docker fixture: guests on their
//   own domain), it makes the participants whose real JID is on the main
//   domain owners of the room, as Jicofo grants moderator to authenticated users.
// - Bridge (JVB): `jvb@auth.<domain>`, in `jvbbrewery@<internal muc>` with a
//   colibri `<stats/>` presence; answers `<conference-modify xmlns='jitsi:colibri2'/>`
//   with a `<conference-modify-ack/>` holding an ICE-UDP transport per endpoint;
//   with `colibriWs`, the transport names a bridge channel (colibri-ws, a
//   WebSocket the bridge serves on loopback) over which `dominantSpeaker()`
//   sends `DominantSpeakerEndpointChangeEvent` as the bridge does.
// - Jibri: `jibri@auth.<domain>`, in `jibribrewery@<internal muc>` with a
//   `<jibri-status/>` presence (idle, healthy).
// Nothing here carries media: the test checks the signalling.
import { randomUUID, randomBytes } from 'node:crypto';
import { client as xmppClient, xml } from '@xmpp/client';
import WebSocket, { WebSocketServer } from 'ws';

// @xmpp/websocket uses the global WebSocket (Node 20 has none): `ws`, with
// every name resolved to loopback, where lilt serves the fixture's domains.
class LoopbackWebSocket extends WebSocket {
  constructor(url, protocols) {
    super(url, protocols, {
      lookup: (_host, options, callback) => (options && options.all
        ? callback(null, [{ address: '127.0.0.1', family: 4 }])
        : callback(null, '127.0.0.1', 4)),
    });
  }
}
globalThis.WebSocket = LoopbackWebSocket;

export const NS = {
  focus: 'http://jitsi.org/protocol/focus',
  muc: 'http://jabber.org/protocol/muc',
  mucUser: 'http://jabber.org/protocol/muc#user',
  jingle: 'urn:xmpp:jingle:1',
  rtp: 'urn:xmpp:jingle:apps:rtp:1',
  iceUdp: 'urn:xmpp:jingle:transports:ice-udp:1',
  dtls: 'urn:xmpp:jingle:apps:dtls:0',
  rtcpFb: 'urn:xmpp:jingle:apps:rtp:rtcp-fb:0',
  hdrext: 'urn:xmpp:jingle:apps:rtp:rtp-hdrext:0',
  grouping: 'urn:xmpp:jingle:apps:grouping:0',
  colibri: 'http://jitsi.org/protocol/colibri',
  colibri2: 'jitsi:colibri2',
  jibri: 'http://jitsi.org/protocol/jibri',
  health: 'http://jitsi.org/protocol/health',
};

const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));

// muc_domain_mapper's two spellings of a tenant room: the virtual
// `room@<prefix>.<tenant>.<domain>` the clients use and the real
// `[tenant]room@<prefix>.<domain>` the MUC holds (Jitsi's mapper rewrites the
// `from` of what sessions receive to the first, and a conference IQ's `room`
// to the second). Any address is returned in the real form.
export function realRoomJid(server, address) {
  const [bare, ...resource] = (address || '').split('/');
  const [node, host] = bare.includes('@') ? bare.split('@') : [null, bare];
  const prefix = server.muc.split('.')[0];
  const base = server.muc.slice(prefix.length + 1);
  const tenant = node && host.startsWith(`${prefix}.`) && host.endsWith(`.${base}`)
    && host.slice(prefix.length + 1, -(base.length + 1));
  if (!tenant || tenant.includes('.')) return address;
  return `[${tenant}]${node}@${server.muc}${resource.length ? `/${resource.join('/')}` : ''}`;
}

// A logged-in @xmpp/client with every stanza it received kept, and waits on them.
export class Account {
  constructor(server, username, domain, password, resource) {
    this.jid = `${username}@${domain}`;
    this.server = server;
    this.received = [];
    this.waiters = [];
    this.xmpp = xmppClient({ service: server.ws, domain, resource, username, password });
    this.xmpp.on('error', () => {});
    // @xmpp/connection 0.14 throws (uncaught) when a WebSocket frame arrives
    // while stop() has already dropped its parser; such late frames are dropped.
    const onData = this.xmpp._onData;
    this.xmpp._onData = function lateDataSafe(data) {
      if (this.parser) onData.call(this, data);
    };
    this.xmpp.on('stanza', (stanza) => {
      this.received.push(stanza);
      for (const w of [...this.waiters]) {
        if (w.match(stanza)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.ok(stanza);
        }
      }
    });
  }

  async start() {
    this.address = (await this.xmpp.start()).toString();
    return this;
  }

  async stop() {
    await this.xmpp.stop().catch(() => {});
  }

  send(stanza) {
    return this.xmpp.send(stanza);
  }

  request(stanza, timeout = 10000) {
    return this.xmpp.iqCaller.request(stanza, timeout);
  }

  // The first stanza received (already, or within ms) for which match() is true.
  expect(match, what, ms = 10000) {
    const seen = this.received.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((ok, fail) => {
      const waiter = { match, ok };
      this.waiters.push(waiter);
      setTimeout(() => {
        const i = this.waiters.indexOf(waiter);
        if (i >= 0) {
          this.waiters.splice(i, 1);
          fail(new Error(`${this.jid}: timed out waiting for ${what}; received:\n${this.received.map(String).join('\n')}`));
        }
      }, ms);
    });
  }

  // Joins room/nick with extra presence children; resolves with the self-presence.
  async join(room, nick, ...children) {
    await this.send(xml('presence', { to: `${room}/${nick}` }, xml('x', { xmlns: NS.muc }), ...children));
    const occupant = realRoomJid(this.server, `${room}/${nick}`);
    return this.expect((s) => s.is('presence') && realRoomJid(this.server, s.attrs.from) === occupant && !s.attrs.type
      && s.getChild('x', NS.mucUser)?.getChildren('status').some((st) => st.attrs.code === '110'),
    `self-presence in ${room}`);
  }
}

// An ICE-UDP transport as the bridge describes its side (no media flows).
function bridgeTransport(webSocketUrl) {
  const fingerprint = [...randomBytes(32)].map((b) => b.toString(16).padStart(2, '0').toUpperCase()).join(':');
  return xml('transport', { xmlns: NS.iceUdp, ufrag: randomBytes(4).toString('hex'), pwd: randomBytes(12).toString('hex') },
    xml('rtcp-mux'),
    xml('fingerprint', { xmlns: NS.dtls, hash: 'sha-256', setup: 'actpass' }, fingerprint),
    xml('candidate', {
      component: '1', foundation: '1', generation: '0', id: randomBytes(4).toString('hex'), ip: '127.0.0.1',
      network: '0', port: '10000', priority: '2130706431', protocol: 'udp', type: 'host',
    }),
    ...(webSocketUrl ? [xml('web-socket', { xmlns: NS.colibri, url: webSocketUrl })] : []));
}

export class Bridge extends Account {
  constructor(server, password, { nick = 'jvb-1', colibriWs = false } = {}) {
    super(server, 'jvb', server.authDomain, password, 'jvb');
    this.brewery = `jvbbrewery@${server.internalMuc}`;
    this.nick = nick;
    this.colibriWs = colibriWs;
    this.channels = new Map(); // endpoint id -> open bridge channel WebSocket
    this.allocations = []; // the <conference-modify/> requests answered
    this.xmpp.iqCallee.set(NS.colibri2, 'conference-modify', (ctx) => this.onConferenceModify(ctx));
  }

  async start() {
    if (this.colibriWs) await this.listenColibriWs();
    await super.start();
    await this.send(xml('presence'));
    this.selfPresence = await this.join(this.brewery, this.nick,
      xml('stats', { xmlns: NS.colibri },
        xml('stat', { name: 'stress_level', value: '0.01' }),
        xml('stat', { name: 'region', value: 'test-region' }),
        xml('stat', { name: 'version', value: '2.1-emulated' }),
        xml('stat', { name: 'relay_id', value: this.nick })));
    return this;
  }

  async stop() {
    await super.stop();
    if (this.wss) {
      for (const socket of this.wss.clients) socket.terminate();
      await new Promise((ok) => this.wss.close(ok));
    }
  }

  // The colibri-ws endpoint: /colibri-ws/<relay>/<meeting id>/<endpoint id>.
  async listenColibriWs() {
    this.wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise((ok) => this.wss.once('listening', ok));
    this.wss.on('connection', (socket, request) => {
      const endpoint = decodeURIComponent(new URL(request.url, 'ws://x').pathname.split('/').pop());
      this.channels.set(endpoint, socket);
      socket.on('message', () => {}); // ClientHello, constraints: nothing to answer here
      socket.on('close', () => { if (this.channels.get(endpoint) === socket) this.channels.delete(endpoint); });
    });
  }

  channelUrl(meetingId, endpoint) {
    if (!this.wss) return undefined;
    return `ws://127.0.0.1:${this.wss.address().port}/colibri-ws/${encodeURIComponent(this.nick)}/`
      + `${encodeURIComponent(meetingId)}/${encodeURIComponent(endpoint)}?pwd=${randomBytes(8).toString('hex')}`;
  }

  // The bridge's dominant speaker detection, told to every endpoint with an open channel.
  dominantSpeaker(endpoint, previousSpeakers = []) {
    const event = JSON.stringify({ colibriClass: 'DominantSpeakerEndpointChangeEvent',
      dominantSpeakerEndpoint: endpoint, previousSpeakers });
    for (const socket of this.channels.values()) socket.send(event);
    return [...this.channels.keys()];
  }

  onConferenceModify({ stanza, element }) {
    this.allocations.push({ from: stanza.attrs.from, request: element });
    const meetingId = element.attrs['meeting-id'] || '';
    const endpoints = element.getChildren('endpoint').map((ep) => xml('endpoint', { id: ep.attrs.id },
      xml('transport', {}, bridgeTransport(this.channelUrl(meetingId, ep.attrs.id)))));
    return xml('conference-modify-ack', { xmlns: NS.colibri2 }, ...endpoints);
  }
}

export class Jibri extends Account {
  constructor(server, password) {
    super(server, 'jibri', server.authDomain, password, 'jibri');
    this.brewery = `jibribrewery@${server.internalMuc}`;
  }

  async start() {
    await super.start();
    await this.send(xml('presence'));
    this.selfPresence = await this.join(this.brewery, 'jibri-1',
      xml('jibri-status', { xmlns: NS.jibri },
        xml('busy-status', { xmlns: NS.jibri, status: 'idle' }),
        xml('health', { xmlns: NS.health, status: 'healthy' })));
    return this;
  }
}

// A deep copy of an element (one transport goes into each content).
function copy(element) {
  return xml(element.name, { ...element.attrs },
    ...element.children.map((c) => (typeof c === 'string' ? c : copy(c))));
}

// The Jingle offer Jicofo sends for the bridge's side of a participant's session.
function sessionInitiate(to, sid, transport) {
  const payloads = {
    audio: [xml('payload-type', { id: '111', name: 'opus', clockrate: '48000', channels: '2' },
      xml('parameter', { name: 'minptime', value: '10' }),
      xml('parameter', { name: 'useinbandfec', value: '1' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'transport-cc' }))],
    video: [xml('payload-type', { id: '100', name: 'VP8', clockrate: '90000' },
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'ccm', subtype: 'fir' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'nack' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'nack', subtype: 'pli' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'goog-remb' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'transport-cc' })),
    // Jicofo offers retransmission for each video codec (RFC 4588).
    xml('payload-type', { id: '96', name: 'rtx', clockrate: '90000' },
      xml('parameter', { name: 'apt', value: '100' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'ccm', subtype: 'fir' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'nack' }),
      xml('rtcp-fb', { xmlns: NS.rtcpFb, type: 'nack', subtype: 'pli' }))],
  };
  const contents = ['audio', 'video'].map((media) => xml('content', { creator: 'initiator', name: media, senders: 'both' },
    xml('description', { xmlns: NS.rtp, media },
      ...payloads[media],
      xml('rtp-hdrext', { xmlns: NS.hdrext, id: '5',
        uri: 'http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01' }),
      xml('rtcp-mux')),
    copy(transport)));
  return xml('iq', { type: 'set', to },
    xml('jingle', { xmlns: NS.jingle, action: 'session-initiate', initiator: 'focus', sid },
      xml('group', { xmlns: NS.grouping, semantics: 'BUNDLE' },
        xml('content', { name: 'audio' }), xml('content', { name: 'video' })),
      ...contents,
      xml('bridge-session', { xmlns: NS.focus, id: randomUUID(), region: 'test-region' })));
}

export class Focus extends Account {
  constructor(server, password) {
    super(server, 'focus', server.authDomain, password, 'focus');
    this.component = `focus.${server.domain}`;
    this.rooms = new Map(); // real room JID -> { participants: Map(real occupant JID -> state) }
    this.requests = []; // { requester, room } of each conference IQ
    this.bridges = new Map(); // brewery occupant JID -> real JID
    this.brewery = `jvbbrewery@${server.internalMuc}`;
    this.jibriBrewery = `jibribrewery@${server.internalMuc}`;
    this.jibris = new Map();
    this.errors = [];
    // Jicofo with XMPP authentication: users of the main domain are moderators.
    this.grantOwners = Boolean(server.anonymousDomain);
    this.owners = new Set(); // `${real room}|${bare JID}` granted
    this.xmpp.iqCallee.set(NS.focus, 'conference', (ctx) => this.onConference(ctx));
    this.xmpp.iqCallee.set(NS.jingle, 'jingle', (ctx) => this.onJingle(ctx));
    this.xmpp.on('stanza', (s) => { if (s.is('presence')) this.onPresence(s); });
  }

  async start() {
    await super.start();
    await this.send(xml('presence'));
    await this.join(this.brewery, 'focus');
    await this.join(this.jibriBrewery, 'focus');
    return this;
  }

  onPresence(p) {
    const from = p.attrs.from || '';
    if (p.attrs.type === 'subscribe' && from === this.component) {
      this.send(xml('presence', { type: 'subscribed', to: this.component }));
      return;
    }
    const [room, nick] = [realRoomJid(this.server, from.split('/')[0]), from.split('/').slice(1).join('/')];
    const realJid = p.getChild('x', NS.mucUser)?.getChild('item')?.attrs.jid;
    if (room === this.brewery && nick !== 'focus') {
      if (p.attrs.type === 'unavailable') this.bridges.delete(from);
      else if (p.getChild('stats', NS.colibri) && realJid) this.bridges.set(from, realJid);
      return;
    }
    if (room === this.jibriBrewery && nick !== 'focus') {
      if (p.attrs.type !== 'unavailable' && p.getChild('jibri-status', NS.jibri)) this.jibris.set(from, realJid);
      return;
    }
    const conference = this.rooms.get(room);
    if (!conference || nick === 'focus' || p.attrs.type) return;
    this.maybeGrantOwner(room, realJid);
    const key = `${room}/${nick}`;
    if (conference.participants.has(key)) return;
    const participant = { occupant: from, realJid, sid: randomUUID().replace(/-/g, '').slice(0, 12) };
    conference.participants.set(key, participant);
    this.invite(conference, participant).catch((err) => this.errors.push(err));
  }

  maybeGrantOwner(room, realJid) {
    const bare = (realJid || '').split('/')[0];
    if (!this.grantOwners || !bare.endsWith(`@${this.server.domain}`) || this.owners.has(`${room}|${bare}`)) return;
    this.owners.add(`${room}|${bare}`);
    this.request(xml('iq', { type: 'set', to: room },
      xml('query', { xmlns: 'http://jabber.org/protocol/muc#admin' }, xml('item', { affiliation: 'owner', jid: bare }))))
      .catch((err) => this.errors.push(err));
  }

  // Conference IQs arrive from focus.<domain>/<requester's JID> (client_proxy).
  onConference({ stanza, element }) {
    const room = element.attrs.room;
    const requester = stanza.attrs.from.startsWith(`${this.component}/`)
      ? stanza.attrs.from.slice(this.component.length + 1) : stanza.attrs.from;
    this.requests.push({ requester, room, from: stanza.attrs.from });
    return this.ensureRoom(room).then(() => xml('conference', {
      xmlns: NS.focus, room, ready: 'true', focusjid: this.jid, 'session-id': randomUUID(),
    }, xml('property', { name: 'authentication', value: 'false' })));
  }

  ensureRoom(requested) {
    const room = realRoomJid(this.server, requested);
    if (!this.rooms.has(room)) {
      const conference = { room, participants: new Map(), meetingId: randomUUID() };
      conference.joined = this.join(room, 'focus').then((self) => { conference.selfPresence = self; });
      this.rooms.set(room, conference);
    }
    return this.rooms.get(room).joined;
  }

  // Allocate on the bridge, then offer the participant its session.
  async invite(conference, participant) {
    const bridge = [...this.bridges.values()][0];
    if (!bridge) throw new Error('no bridge in the brewery');
    const endpointId = participant.occupant.split('/').slice(1).join('/');
    const ack = await this.request(xml('iq', { type: 'set', to: bridge },
      xml('conference-modify', { xmlns: NS.colibri2, 'meeting-id': conference.meetingId, name: conference.room, create: 'true' },
        xml('endpoint', { xmlns: NS.colibri2, id: endpointId, create: 'true', 'stats-id': endpointId },
          xml('media', { type: 'audio' }, xml('payload-type', { xmlns: NS.rtp, id: '111', name: 'opus', clockrate: '48000', channels: '2' })),
          xml('media', { type: 'video' }, xml('payload-type', { xmlns: NS.rtp, id: '100', name: 'VP8', clockrate: '90000' })),
          xml('transport', { 'ice-controlling': 'true' })))));
    const transport = ack.getChild('conference-modify-ack', NS.colibri2)
      ?.getChildren('endpoint').find((ep) => ep.attrs.id === endpointId)
      ?.getChild('transport')?.getChild('transport', NS.iceUdp);
    if (!transport) throw new Error(`no transport for ${endpointId} in the bridge's answer: ${ack}`);
    participant.bridgeTransport = transport;
    participant.offerResult = await this.request(sessionInitiate(participant.occupant, participant.sid, transport));
  }

  onJingle({ stanza, element }) {
    const from = realRoomJid(this.server, stanza.attrs.from);
    const participant = this.rooms.get(from.split('/')[0])?.participants.get(from);
    if (participant && element.attrs.sid === participant.sid) {
      (participant.actions ||= []).push(element);
    }
    return true;
  }
}
