// Jitsi's room features end to end on the docker fixture (it loads
// muc_lobby_rooms, muc_breakout_rooms, speakerstats_component,
// av_moderation_component, polls_component and end_conference): two or more
// lib-jitsi-meet 2.6726.2 pages in headless Chromium, a moderator (an account
// of meet.jitsi, made owner by the emulated focus as Jicofo does for
// authenticated users) and guests (guest.meet.jitsi). In each step one page
// acts through lib-jitsi-meet's API (or, for what 2.6726.2 has no API for,
// sends on the library's own XMPP connection what newer Jitsi Meet clients
// send) and another page's library reports the change (its events/state).
// Jicofo and the Videobridge are emulated (./emulated.mjs); the bridge serves
// a colibri-ws bridge channel so that it can name the dominant speaker.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { chromiumPath } from '../lib/browser.js';
import { sleep, until } from '../lib/lilt.js';
import { startJitsi, fixtureAvailable, deployments } from './fixture.mjs';
import { launchBrowser, waitEvent, joinConference } from './browser.mjs';
import { Bridge, Focus } from './emulated.mjs';

const PASSWORD = 'e2e-secret';
const d = deployments.docker;
const skip = (!fixtureAvailable('docker') && `skipping: ../shared not found (needs ../shared/fixtures/${d.fixture})`)
  || (!chromiumPath() && 'skipping: Debian chromium is not installed (scripts/test.sh js installs it)');
const hosts = { domain: d.domain, muc: d.muc, anonymousdomain: d.anonymousDomain };
const component = (name) => `${name}.${d.domain}`;

// The arguments of each time `page` reported `name`.
const eventsOf = (page, name) => page.evaluate((n) => window.meet.events.filter((e) => e[0] === n).map((e) => e.slice(1)), name);
async function waitFor(page, what, predicate, ms = 15000) {
  try {
    return await until(async () => predicate(await page.evaluate(() => window.meet.events)), ms, what);
  } catch (err) {
    const events = await page.evaluate(() => JSON.stringify(window.meet.events));
    const trace = await page.evaluate(() => window.meet.trace.slice(-25).join('\n'));
    throw new Error(`${err.message}\nevents: ${events.slice(-4000)}\nstanzas:\n${trace}\nconsole:\n${page.logs.slice(-15).join('\n')}`);
  }
}
const hasEvent = (name, test = () => true) => (events) => events.some((e) => e[0] === name && test(e.slice(1)));

// The text of the first <json-message> of a serialized stanza, unescaped.
function jsonMessage(stanza) {
  const m = /<json-message[^>]*>([\s\S]*?)<\/json-message>/.exec(stanza);
  return JSON.parse((m ? m[1] : 'null').replace(/&quot;/g, '"').replace(/&apos;/g, '\'').replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>').replace(/&amp;/g, '&'));
}
// The json-message payloads `page` received from `from` (window.meet.listen).
async function jsonFrom(page, from) {
  const stanzas = await page.evaluate(() => window.meet.received);
  return stanzas.filter((s) => s.includes(`from="${from}"`)).map(jsonMessage).filter(Boolean);
}
// The first such payload, waited for.
async function received(page, from, match, what) {
  let found;
  await until(async () => { found = (await jsonFrom(page, from)).find(match); return found; }, 10000, what);
  return found;
}
const xmlText = (s) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

describe('Jitsi room features through lib-jitsi-meet in Chromium, docker fixture', { skip }, () => {
  let server;
  let browser;
  let focus;
  let bridge;
  const pages = [];
  const room = 'features';
  const roomJid = `${room}@${d.muc}`;
  let host; // the moderator (moderator@meet.jitsi over WebSocket)
  let guest; // a guest over BOSH
  let admitted; // a guest let in from the lobby

  const join = async (options) => {
    const who = await joinConference(browser, server, { room, hosts, config: { hiddenDomain: d.hiddenDomain }, ...options });
    pages.push(who.page);
    return who;
  };

  before(async () => {
    const users = [['focus', d.authDomain], ['jvb', d.authDomain], d.member].map(([u, h]) => [u, h, PASSWORD]);
    server = await startJitsi('docker', users);
    bridge = await new Bridge(server, PASSWORD, { colibriWs: true }).start();
    focus = await new Focus(server, PASSWORD).start();
    browser = await launchBrowser(server);
  });
  after(async () => {
    for (const p of pages) await p.evaluate(() => window.meet.leave()).catch(() => {});
    await browser?.close();
    for (const a of [focus, bridge]) await a?.stop();
    await server?.stop();
  });

  test('the authenticated host is made moderator by the focus, the guest is not', async () => {
    host = await join({ transport: 'websocket', credentials: { id: `${d.member[0]}@${d.member[1]}`, password: PASSWORD } });
    guest = await join({ transport: 'bosh' });
    await until(() => host.page.evaluate(() => window.meet.conference.isModerator()), 10000, 'the host is moderator');
    assert.equal(await guest.page.evaluate(() => window.meet.conference.isModerator()), false);
    // The host saw its own role change; the guest's library knows the host as moderator.
    await waitFor(host.page, 'USER_ROLE_CHANGED for the host',
      hasEvent('conference.roleChanged', ([id, role]) => id === host.nick && role === 'moderator'));
    assert.equal(await guest.page.evaluate((id) => window.meet.conference.getParticipantById(id)?.getRole(), host.nick),
      'moderator');
    for (const who of [host, guest]) {
      await until(() => who.page.evaluate(() => window.meet.conference.isAVModerationSupported()
        && window.meet.conference.getBreakoutRooms().isSupported()), 5000, 'components discovered');
    }
  });

  test('AV moderation: the moderator enables audio moderation and approves the guest', async () => {
    assert.ok(host && guest, 'both are in');
    await host.page.evaluate(() => window.meet.conference.enableAVModeration('audio'));
    await waitFor(guest.page, 'AV_MODERATION_CHANGED on the guest',
      hasEvent('conference.av_moderation.changed', ([change]) => change?.enabled === true && change.mediaType === 'audio'
        && change.actor?.participant === host.nick));
    await host.page.evaluate((id) => window.meet.conference.avModerationApprove('audio', id), guest.nick);
    await waitFor(guest.page, 'AV_MODERATION_APPROVED on the guest',
      hasEvent('conference.av_moderation.approved', ([approved]) => approved?.mediaType === 'audio'));
    // The moderators are told whom the approval was for.
    await waitFor(host.page, 'AV_MODERATION_PARTICIPANT_APPROVED on the host',
      hasEvent('conference.av_moderation.participant.approved',
        ([approved]) => approved?.participant?.participant === guest.nick && approved.mediaType === 'audio'));
  });

  test('breakout rooms: the moderator creates one, the guest is told, then asked to move there', async () => {
    assert.ok(host && guest, 'both are in');
    await host.page.evaluate(() => window.meet.conference.getBreakoutRooms().createBreakoutRoom('x'));
    const listed = ([payload]) => Object.values(payload?.rooms || {}).some((r) => r.name === 'x' && !r.isMainRoom);
    await waitFor(guest.page, 'BREAKOUT_ROOMS_UPDATED listing x on the guest', hasEvent('conference.breakout-rooms.updated', listed));
    await waitFor(host.page, 'BREAKOUT_ROOMS_UPDATED listing x on the host', hasEvent('conference.breakout-rooms.updated', listed));
    const [[update]] = (await eventsOf(host.page, 'conference.breakout-rooms.updated')).filter(listed).slice(-1);
    const breakout = Object.values(update.rooms).find((r) => r.name === 'x');
    assert.match(breakout.jid, new RegExp(`@breakout\\.${d.domain.replace(/\./g, '\\.')}$`));
    const main = Object.values(update.rooms).find((r) => r.isMainRoom);
    assert.equal(main.jid, roomJid);
    // As Jitsi Meet: the participant's JID from the rooms' participant lists.
    const entry = Object.values(main.participants || {}).find((p) => p.jid === guest.jid);
    assert.ok(entry, `the guest in the main room's list: ${JSON.stringify(main.participants)}`);
    await host.page.evaluate((p, r) => window.meet.conference.getBreakoutRooms().sendParticipantToRoom(p, r),
      entry.jid, breakout.jid);
    await waitFor(guest.page, 'BREAKOUT_ROOMS_MOVE_TO_ROOM on the guest',
      hasEvent('conference.breakout-rooms.move-to-room', ([target]) => target === breakout.jid));
  });

  test('polls (polls component, json-message): a poll and an answer reach the other page', async () => {
    assert.ok(host && guest, 'both are in');
    const polls = component('polls');
    for (const who of [host, guest]) await who.page.evaluate((f) => window.meet.listen(f), polls);
    const poll = { type: 'polls', command: 'new-poll', pollId: 'poll-1', question: 'Lunch?', answers: [{ name: 'yes' }, { name: 'no' }] };
    await host.page.evaluate((s) => window.meet.send(s),
      `<message xmlns='jabber:client' to='${polls}'><json-message xmlns='http://jitsi.org/jitmeet'>${xmlText(JSON.stringify(poll))}</json-message></message>`);
    const created = await received(guest.page, polls, (j) => j.command === 'new-poll', 'the poll on the guest page');
    assert.equal(created.type, 'polls');
    assert.equal(created.pollId, 'poll-1');
    assert.equal(created.senderId, host.nick);
    assert.equal(created.question, 'Lunch?');
    assert.deepEqual(created.answers.map((a) => a.name), ['yes', 'no']);
    const answer = { type: 'polls', command: 'answer-poll', pollId: 'poll-1', answers: [true, false] };
    await guest.page.evaluate((s) => window.meet.send(s),
      `<message xmlns='jabber:client' to='${polls}'><json-message xmlns='http://jitsi.org/jitmeet'>${xmlText(JSON.stringify(answer))}</json-message></message>`);
    const answered = await received(host.page, polls, (j) => j.command === 'answer-poll', 'the answer on the host page');
    assert.equal(answered.senderId, guest.nick);
    assert.deepEqual(answered.answers, [true, false]);
  });

  test('speaker stats: the bridge names the host dominant speaker, a newcomer\'s stats show the host\'s time', async () => {
    assert.ok(host && guest, 'both are in');
    await until(() => bridge.channels.has(host.nick) && bridge.channels.has(guest.nick), 15000, 'bridge channels open');
    assert.ok(await host.page.evaluate(() => Boolean(window.meet.connection.xmpp.speakerStatsComponentAddress)));
    bridge.dominantSpeaker(host.nick);
    await waitFor(host.page, 'DOMINANT_SPEAKER_CHANGED on the host', hasEvent('conference.dominantSpeaker', ([id]) => id === host.nick));
    await sleep(1500);
    bridge.dominantSpeaker(guest.nick, [host.nick]);
    await waitFor(guest.page, 'DOMINANT_SPEAKER_CHANGED on the guest', hasEvent('conference.dominantSpeaker', ([id]) => id === guest.nick));
    // The newcomer was not there: what it knows comes from speakerstats_component.
    const newcomer = await join({ transport: 'websocket' });
    const stats = () => newcomer.page.evaluate((ids) => Object.fromEntries(ids.map((id) => {
      const s = window.meet.conference.getSpeakerStats()[id];
      return [id, s ? s.getTotalDominantSpeakerTime() : null];
    })), [host.nick, guest.nick]);
    await until(async () => (await stats())[host.nick] > 0, 10000, 'the host\'s speaker time on the newcomer');
    const seen = await stats();
    assert.ok(seen[host.nick] >= 1000 && seen[host.nick] < 10000, `host spoke ~1.5 s: ${JSON.stringify(seen)}`);
    assert.ok(seen[guest.nick] >= 0, `the guest (speaking now) is known: ${JSON.stringify(seen)}`);
    await newcomer.page.evaluate(() => window.meet.leave());
  });

  test('lobby: enabled by the moderator, a newcomer is refused, knocks, is approved and gets in', async () => {
    assert.ok(host && guest, 'both are in');
    await host.page.evaluate(() => window.meet.conference.enableLobby());
    await waitFor(host.page, 'MEMBERS_ONLY_CHANGED on the host', hasEvent('conference.membersOnlyChanged', ([on]) => on === true));
    // 2.6726.2 first makes everyone in the room a member, naming them by
    // full JID; Prosody 0.12 (and lilt) refuse that with jid-malformed ("Bare
    // JID expected", later lib-jitsi-meet sends bare JIDs), so the guest, not
    // a member, is removed from the now members-only room with status 322.
    const hostTrace = await host.page.evaluate(() => window.meet.trace.join('\n'));
    assert.match(hostTrace, /<item affiliation="member" jid="[^"]+\/[^"]+"/, 'the library grants membership by full JID');
    assert.match(hostTrace, /jid-malformed/, 'refused as Prosody 0.12 does');
    await waitFor(guest.page, 'the guest removed (322)', hasEvent('conference.left'));
    assert.match(await guest.page.evaluate(() => window.meet.trace.join('\n')), /<status code="322"\/>/);
    // Jitsi Meet asks for a display name first: the lobby needs one.
    const knocker = await join({ transport: 'websocket', joined: false,
      config: { hiddenDomain: d.hiddenDomain, displayName: 'Knocker' } });
    await waitFor(knocker.page, 'CONFERENCE_FAILED with MEMBERS_ONLY_ERROR',
      hasEvent('conference.failed', ([error, lobbyJid]) => error === 'conference.connectionError.membersOnly'
        && lobbyJid === `${room}@lobby.${d.domain}`));
    await knocker.page.evaluate(() => window.meet.conference.joinLobby('Knocker'));
    await waitFor(host.page, 'LOBBY_USER_JOINED on the host',
      hasEvent('conference.lobby.userJoined', ([, name]) => name === 'Knocker'));
    const [[id]] = (await eventsOf(host.page, 'conference.lobby.userJoined')).filter(([, name]) => name === 'Knocker');
    await host.page.evaluate((i) => window.meet.conference.lobbyApproveAccess(i), id);
    await waitEvent(knocker.page, 'conference.joined');
    knocker.nick = await knocker.page.evaluate(() => window.meet.conference.myUserId());
    await waitFor(host.page, 'USER_JOINED for the knocker on the host', hasEvent('conference.userJoined', ([who]) => who === knocker.nick));
    admitted = knocker;
  });

  test('end conference (<end_conference/> to the component): the others are told the conference was destroyed', async () => {
    assert.ok(host && admitted, 'the host and the participant admitted from the lobby are in');
    await host.page.evaluate((s) => window.meet.send(s),
      `<message xmlns='jabber:client' to='${component('endconference')}'><end_conference/></message>`);
    await waitFor(admitted.page, 'CONFERENCE_FAILED with CONFERENCE_DESTROYED on the other participant',
      hasEvent('conference.failed', ([error, reason]) => error === 'conference.destroyed'
        && reason === 'The meeting has been terminated'));
  });
});
