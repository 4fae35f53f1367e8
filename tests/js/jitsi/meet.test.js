// Jitsi Meet signalling end to end: lib-jitsi-meet 2.6726.2 (@lyno/lib-jitsi-meet)
// in headless Chromium with fake media devices, against lilt serving the
// Debian and docker Jitsi fixtures of ../shared, with Jicofo, the Videobridge
// and Jibri emulated over XMPP (./emulated.mjs). Each flow: the browser
// connects (WebSocket or BOSH, `?room=` in the URL), sends the conference IQ
// to focus.<domain>, gets the focus's answer through client_proxy, joins the
// room once the focus is in, receives the Jingle session-initiate from
// room@conference/focus (whose transport the focus got from the bridge over
// Colibri2) and answers session-accept, which reaches the focus.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chromiumPath } from '../lib/browser.js';
import { until } from '../lib/lilt.js';
import { startJitsi, fixtureAvailable, deployments } from './fixture.mjs';
import { launchBrowser, waitEvent, joinConference } from './browser.mjs';
import { Account, Bridge, Focus, Jibri, NS, realRoomJid } from './emulated.mjs';

const PASSWORD = 'e2e-secret';
const skipFor = (kind) => {
  if (!fixtureAvailable(kind)) return `skipping: ../shared not found (needs ../shared/fixtures/${deployments[kind].fixture})`;
  if (!chromiumPath()) return 'skipping: Debian chromium is not installed (scripts/test.sh js installs it)';
  return false;
};

// What every flow checks once a participant has joined `roomJid`.
async function checkSignalling(focus, bridge, roomJid, who) {
  // A tenant room's IQ reaches the focus with the real name, as Jitsi's mapper rewrites it.
  const request = focus.requests.find((r) => r.requester === who.jid && r.room === realRoomJid(focus.server, roomJid));
  assert.ok(request, `conference IQ from ${who.jid} for ${roomJid} through client_proxy; got ${JSON.stringify(focus.requests)}`);
  assert.equal(request.from, `${focus.component}/${who.jid}`);
  roomJid = realRoomJid(focus.server, roomJid);
  const occupant = `${roomJid}/${who.nick}`;
  const accepted = await until(() => {
    if (focus.errors.length) throw focus.errors[0];
    return focus.rooms.get(roomJid)?.participants.get(occupant)?.actions?.some((a) => a.attrs.action === 'session-accept');
  }, 30000, `session-accept from ${occupant}`)
    .then(() => focus.rooms.get(roomJid).participants.get(occupant))
    .catch((err) => {
      throw new Error(`${err.message}; focus errors: ${focus.errors.map(String)}; focus saw ${[...focus.received].slice(-15).join('\n')}`);
    });
  assert.equal(accepted.realJid, who.jid, 'the focus sees the participant\'s real JID in the room');
  assert.equal(accepted.offerResult.attrs.type, 'result', 'the session-initiate was acknowledged');
  const accept = accepted.actions.find((a) => a.attrs.action === 'session-accept');
  assert.equal(accept.attrs.sid, accepted.sid);
  const contents = accept.getChildren('content');
  assert.deepEqual(contents.map((c) => c.attrs.name).sort(), ['audio', 'video'], String(accept));
  for (const content of contents) {
    const transport = content.getChild('transport', NS.iceUdp);
    assert.ok(transport?.attrs.ufrag && transport.getChild('fingerprint', NS.dtls), `answer transport: ${content}`);
    assert.ok(content.getChild('description', NS.rtp), `answer description: ${content}`);
  }
  const allocation = bridge.allocations.find((a) => a.request.attrs.name === roomJid
    && a.request.getChildren('endpoint').some((ep) => ep.attrs.id === who.nick));
  assert.ok(allocation, `Colibri2 allocation for ${who.nick} reached the bridge`);
  assert.equal(allocation.from.split('/')[0], focus.jid);
  return accept;
}

for (const kind of ['debian', 'docker']) {
  describe(`lib-jitsi-meet in Chromium, ${kind} fixture`, { skip: skipFor(kind) }, () => {
    let server;
    let browser;
    let focus;
    let bridge;
    let jibri;
    const pages = [];
    const d = deployments[kind];
    const users = [['focus', d.authDomain], ['jvb', d.authDomain], ['jibri', d.authDomain], d.recorder]
      .concat(d.member ? [d.member] : []).map(([u, h]) => [u, h, PASSWORD]);
    const hosts = { domain: d.domain, muc: d.muc, ...(d.anonymousDomain ? { anonymousdomain: d.anonymousDomain } : {}) };
    const room = `e2e-${kind}`;
    const roomJid = `${room}@${d.muc}`;
    let first;

    before(async () => {
      server = await startJitsi(kind, users);
      bridge = await new Bridge(server, PASSWORD).start();
      jibri = await new Jibri(server, PASSWORD).start();
      focus = await new Focus(server, PASSWORD).start();
      browser = await launchBrowser(server);
    });
    after(async () => {
      for (const p of pages) await p.evaluate(() => window.meet.leave()).catch(() => {});
      await browser?.close();
      for (const a of [focus, bridge, jibri]) await a?.stop();
      await server?.stop();
    });

    test('the bridge and the recorder are in their breweries, seen by the focus with their real JIDs', async () => {
      await until(() => focus.bridges.size === 1 && focus.jibris.size === 1, 5000, 'brewery presences');
      assert.equal([...focus.bridges.values()][0], bridge.address);
      assert.equal([...focus.jibris.values()][0], jibri.address);
    });

    test('over WebSocket: conference IQ via client_proxy, join after the focus, Jingle offer and session-accept, Colibri2', async () => {
      const credentials = d.member ? { id: `${d.member[0]}@${d.member[1]}`, password: PASSWORD } : undefined;
      first = await joinConference(browser, server, { transport: 'websocket', room, hosts, credentials,
        config: { hiddenDomain: d.hiddenDomain } });
      pages.push(first.page);
      const expectedDomain = d.member ? d.member[1] : d.domain;
      assert.match(first.jid, new RegExp(`@${expectedDomain.replace(/\./g, '\\.')}/`));
      await checkSignalling(focus, bridge, roomJid, first);
      await waitEvent(first.page, 'conference.joined');
    });

    test('over BOSH: a second participant, and each sees the other join', async () => {
      assert.ok(first, 'the WebSocket participant is in');
      const second = await joinConference(browser, server, { transport: 'bosh', room, hosts,
        config: { hiddenDomain: d.hiddenDomain } });
      pages.push(second.page);
      if (d.anonymousDomain) assert.match(second.jid, new RegExp(`@${d.anonymousDomain.replace(/\./g, '\\.')}/`));
      await checkSignalling(focus, bridge, roomJid, second);
      const joinedIds = async (page) => page.evaluate(() => window.meet.events
        .filter((e) => e[0] === 'conference.userJoined').map((e) => e[1]));
      await until(async () => (await joinedIds(first.page)).includes(second.nick), 10000, 'USER_JOINED on the first page');
      await until(async () => (await joinedIds(second.page)).includes(first.nick), 10000, 'USER_JOINED on the second page');
      const participants = await second.page.evaluate(() => window.meet.conference.getParticipants().map((p) => p.getId()));
      assert.deepEqual(participants, [first.nick], 'the focus is not a participant');
    });

    test('a recorder on the hidden domain joins without showing as a participant', async () => {
      assert.ok(first, 'the WebSocket participant is in');
      const recorder = new Account(server, d.recorder[0], d.recorder[1], PASSWORD, 'recorder');
      recorder.xmpp.iqCallee.set(NS.jingle, 'jingle', () => true);
      await recorder.start();
      try {
        await recorder.join(roomJid, 'recorder1');
        // Jitsi Meet leaves out participants whose isHidden() is true.
        const seen = () => first.page.evaluate(() => window.meet.conference.getParticipants()
          .map((p) => [p.getId(), p.isHidden()]));
        await until(async () => (await seen()).some(([id]) => id === 'recorder1'), 10000, 'the recorder on the page');
        for (const [id, hidden] of await seen()) assert.equal(hidden, id === 'recorder1', `${id} hidden: ${hidden}`);
      } finally {
        await recorder.stop();
      }
    });
  });
}

describe('lib-jitsi-meet in Chromium, a tenant room (/tenant/room) through muc_domain_mapper', { skip: skipFor('debian') }, () => {
  let server;
  let browser;
  let focus;
  let bridge;
  const d = deployments.debian;

  before(async () => {
    server = await startJitsi('debian', [['focus', d.authDomain, PASSWORD], ['jvb', d.authDomain, PASSWORD]]);
    bridge = await new Bridge(server, PASSWORD).start();
    focus = await new Focus(server, PASSWORD).start();
    browser = await launchBrowser(server);
  });
  after(async () => {
    await browser?.close();
    for (const a of [focus, bridge]) await a?.stop();
    await server?.stop();
  });

  for (const transport of ['websocket', 'bosh']) {
    test(`over ${transport}`, async () => {
      const room = `tenant-${transport}`;
      // What Jitsi Meet's config.js gives for https://<domain>/acme/<room>.
      const hosts = { domain: d.domain, muc: `conference.acme.${d.domain}` };
      const who = await joinConference(browser, server, { transport, room, hosts });
      try {
        await checkSignalling(focus, bridge, `${room}@conference.acme.${d.domain}`, who);
      } finally {
        await who.page.evaluate(() => window.meet.leave()).catch(() => {});
      }
    });
  }
});
