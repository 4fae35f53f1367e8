// goclient drives a whole-server scenario with a Go XMPP library
// (github.com/xmppo/go-xmpp, the library of go-sendxmpp) against lilt or
// Prosody: two accounts log in (STARTTLS, SASL), become mutual contacts
// through presence subscriptions, exchange chat messages, see a message
// carbon on a second resource (XEP-0280), and page through their archive
// (XEP-0313). Each step prints "ok STEP"; the first failure prints
// "FAIL STEP: why" and exits 1.
//
//	goclient -addr 127.0.0.1:5222 -domain localhost -ca ca.pem \
//	    -user alice -password alice-pw -contact bob -contact-password bob-pw
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/xml"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	xmpp "github.com/xmppo/go-xmpp"
)

const (
	nsRoster  = "jabber:iq:roster"
	nsCarbons = "urn:xmpp:carbons:2"
	nsMAM     = "urn:xmpp:mam:2"
	nsUpload  = "urn:xmpp:http:upload:0"
)

// peer is one logged-in connection and what it received, in order.
type peer struct {
	name     string
	client   *xmpp.Client
	incoming chan any
	pending  []any
	errs     chan error
}

func fail(step string, format string, args ...any) {
	fmt.Printf("FAIL %s: %s\n", step, fmt.Sprintf(format, args...))
	os.Exit(1)
}

// mechanism is the SASL mechanism asked for ("" lets go-xmpp choose).
var mechanism = flag.String("mechanism", "PLAIN",
	"SASL mechanism; go-xmpp v0.4.1 chooses SCRAM itself when this is empty, but without "+
		"XEP-0440 channel-binding types in the features its SCRAM sends a wrong channel "+
		"binding (an empty one with -PLUS, \"biws\" after a \"y\" header), which lilt "+
		"and Prosody 0.12 both refuse")

func login(addr, domain, user, password, resource string, roots *x509.CertPool) (*peer, error) {
	opts := xmpp.Options{
		Mechanism: *mechanism,
		Host:      addr,
		User:      user + "@" + domain,
		Password:  password,
		Resource:  resource,
		NoTLS:     true,
		StartTLS:  true,
		TLSConfig: &tls.Config{
			ServerName: domain,
			RootCAs:    roots,
			MinVersion: tls.VersionTLS12,
		},
		DialTimeout: 20 * time.Second,
	}
	c, err := opts.NewClient()
	if err != nil {
		return nil, err
	}
	p := &peer{name: user + "/" + resource, client: c, incoming: make(chan any, 4096), errs: make(chan error, 1)}
	go func() {
		for {
			s, err := c.Recv()
			if err != nil {
				p.errs <- err
				return
			}
			p.incoming <- s
		}
	}()
	return p, nil
}

// expect waits for the first stanza (received earlier and not yet taken, or
// arriving within the timeout) that `match` accepts.
func (p *peer) expect(step string, match func(any) bool) any {
	for i, s := range p.pending {
		if match(s) {
			p.pending = append(p.pending[:i], p.pending[i+1:]...)
			return s
		}
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case s := <-p.incoming:
			if match(s) {
				return s
			}
			p.pending = append(p.pending, s)
		case err := <-p.errs:
			fail(step, "%s: connection failed: %v", p.name, err)
		case <-deadline:
			fail(step, "%s: timed out; pending: %d stanzas", p.name, len(p.pending))
		}
	}
}

func (p *peer) send(step string, raw string) {
	if _, err := p.client.SendOrg(raw); err != nil {
		fail(step, "%s: send: %v", p.name, err)
	}
}

// iq sends an IQ with id `id` and waits for its result (an error fails the step).
func (p *peer) iq(step, id, raw string) xmpp.IQ {
	p.send(step, raw)
	reply := p.expect(step, func(s any) bool {
		iq, ok := s.(xmpp.IQ)
		return ok && iq.ID == id && (iq.Type == "result" || iq.Type == "error")
	}).(xmpp.IQ)
	if reply.Type == "error" {
		fail(step, "%s: iq %s: error %s/%s %s", p.name, id, reply.Error.Type, reply.Error.Condition, reply.Error.Text)
	}
	return reply
}

type rosterQuery struct {
	Items []struct {
		JID          string `xml:"jid,attr"`
		Subscription string `xml:"subscription,attr"`
		Ask          string `xml:"ask,attr"`
	} `xml:"item"`
}

// subscription of `jid` in a roster result or push ("" when absent).
func subscription(query []byte, jid string) string {
	var q rosterQuery
	if err := xml.Unmarshal(query, &q); err != nil {
		return ""
	}
	for _, it := range q.Items {
		if it.JID == jid {
			if it.Subscription == "" {
				return "none"
			}
			return it.Subscription
		}
	}
	return ""
}

func isPresence(from, typ string) func(any) bool {
	return func(s any) bool {
		p, ok := s.(xmpp.Presence)
		return ok && strings.SplitN(p.From, "/", 2)[0] == from && p.Type == typ
	}
}

func isChat(from, text string) func(any) bool {
	return func(s any) bool {
		c, ok := s.(xmpp.Chat)
		return ok && strings.SplitN(c.Remote, "/", 2)[0] == from && c.Text == text
	}
}

// hasChild: a message with a child element `local` in namespace `ns`
// whose content contains `text`.
func hasChild(ns, local, text string) func(any) bool {
	return func(s any) bool {
		c, ok := s.(xmpp.Chat)
		if !ok {
			return false
		}
		for _, e := range c.OtherElem {
			if e.XMLName.Space == ns && e.XMLName.Local == local && strings.Contains(e.InnerXML, text) {
				return true
			}
		}
		return false
	}
}

// isResultOf: a MAM result message of query `queryID`.
func isResultOf(s any, queryID string) bool {
	c, ok := s.(xmpp.Chat)
	if !ok {
		return false
	}
	for _, e := range c.OtherElem {
		if e.XMLName.Space != nsMAM || e.XMLName.Local != "result" {
			continue
		}
		for _, a := range e.Attr {
			if a.Name.Local == "queryid" && a.Value == queryID {
				return true
			}
		}
	}
	return false
}

func main() {
	addr := flag.String("addr", "127.0.0.1:5222", "server address")
	domain := flag.String("domain", "localhost", "the XMPP domain")
	caFile := flag.String("ca", "", "PEM file of the CA that signed the server's certificate")
	user := flag.String("user", "alice", "first account")
	password := flag.String("password", "alice-pw", "its password")
	contact := flag.String("contact", "bob", "second account")
	contactPassword := flag.String("contact-password", "bob-pw", "its password")
	messages := flag.Int("messages", 20, "chat messages to exchange (and to find in the archive)")
	upload := flag.String("upload", "", "an XEP-0363 upload service to share a file through (empty: no upload step)")
	flag.Parse()

	roots := x509.NewCertPool()
	if *caFile != "" {
		pem, err := os.ReadFile(*caFile)
		if err != nil || !roots.AppendCertsFromPEM(pem) {
			fail("setup", "cannot read CA %s: %v", *caFile, err)
		}
	}
	aliceJID, bobJID := *user+"@"+*domain, *contact+"@"+*domain

	alice, err := login(*addr, *domain, *user, *password, "go1", roots)
	if err != nil {
		fail("login", "%s: %v", aliceJID, err)
	}
	bob, err := login(*addr, *domain, *contact, *contactPassword, "go1", roots)
	if err != nil {
		fail("login", "%s: %v", bobJID, err)
	}
	fmt.Println("ok login")

	// Roster: interest first (roster pushes), then mutual subscriptions.
	alice.iq("roster", "r1", "<iq type='get' id='r1'><query xmlns='"+nsRoster+"'/></iq>")
	bob.iq("roster", "r2", "<iq type='get' id='r2'><query xmlns='"+nsRoster+"'/></iq>")
	alice.client.RequestSubscription(bobJID)
	bob.expect("roster", isPresence(aliceJID, "subscribe"))
	bob.client.ApproveSubscription(aliceJID)
	alice.expect("roster", isPresence(bobJID, "subscribed"))
	bob.client.RequestSubscription(aliceJID)
	alice.expect("roster", isPresence(bobJID, "subscribe"))
	alice.client.ApproveSubscription(bobJID)
	bob.expect("roster", isPresence(aliceJID, "subscribed"))
	both := func(jid string) func(any) bool {
		return func(s any) bool {
			iq, ok := s.(xmpp.IQ)
			return ok && iq.Type == "set" && subscription(iq.Query, jid) == "both"
		}
	}
	alice.expect("roster", both(bobJID))
	bob.expect("roster", both(aliceJID))
	result := alice.iq("roster", "r3", "<iq type='get' id='r3'><query xmlns='"+nsRoster+"'/></iq>")
	if got := subscription(result.Query, bobJID); got != "both" {
		fail("roster", "alice's roster has %s as %q", bobJID, got)
	}
	fmt.Println("ok roster")

	// Messages both ways.
	for i := 0; i < *messages; i++ {
		text := fmt.Sprintf("go message %d", i)
		from, to, toJID, fromJID := alice, bob, bobJID, aliceJID
		if i%2 == 1 {
			from, to, toJID, fromJID = bob, alice, aliceJID, bobJID
		}
		if _, _, err := from.client.Send(xmpp.Chat{Remote: toJID, Type: "chat", Text: text}); err != nil {
			fail("messages", "send: %v", err)
		}
		to.expect("messages", isChat(fromJID, text))
	}
	fmt.Println("ok messages")

	// Carbons: a second resource of alice's enables them and sees what her
	// first one sends and receives.
	alice2, err := login(*addr, *domain, *user, *password, "go2", roots)
	if err != nil {
		fail("carbons", "second resource: %v", err)
	}
	alice2.iq("carbons", "c1", "<iq type='set' id='c1'><enable xmlns='"+nsCarbons+"'/></iq>")
	if _, _, err := alice.client.Send(xmpp.Chat{Remote: bobJID, Type: "chat", Text: "carbon copy"}); err != nil {
		fail("carbons", "send: %v", err)
	}
	bob.expect("carbons", isChat(aliceJID, "carbon copy"))
	alice2.expect("carbons", hasChild(nsCarbons, "sent", "carbon copy"))
	if _, _, err := bob.client.Send(xmpp.Chat{Remote: aliceJID + "/go1", Type: "chat", Text: "carbon reply"}); err != nil {
		fail("carbons", "send: %v", err)
	}
	alice.expect("carbons", isChat(bobJID, "carbon reply"))
	alice2.expect("carbons", hasChild(nsCarbons, "received", "carbon reply"))
	fmt.Println("ok carbons")

	// MAM: alice's archive with bob holds every message, paged 7 at a time.
	found, after := 0, ""
	for page := 0; page < 100; page++ {
		id := fmt.Sprintf("m%d", page)
		set := "<max>7</max>"
		if after != "" {
			set += "<after>" + after + "</after>"
		}
		form := "<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>" + nsMAM +
			"</value></field><field var='with'><value>" + bobJID + "</value></field></x>"
		fin := alice.iq("mam", id, "<iq type='set' id='"+id+"'><query xmlns='"+nsMAM+"' queryid='"+id+"'>"+form+
			"<set xmlns='http://jabber.org/protocol/rsm'>"+set+"</set></query></iq>")
		// The results came before the IQ result, so they wait in pending.
		kept := alice.pending[:0]
		for _, s := range alice.pending {
			if isResultOf(s, id) {
				found++
			} else {
				kept = append(kept, s)
			}
		}
		alice.pending = kept
		var f struct {
			Complete string `xml:"complete,attr"`
			Last     string `xml:"set>last"`
		}
		if err := xml.Unmarshal(fin.Query, &f); err != nil {
			fail("mam", "fin: %v (%s)", err, fin.Query)
		}
		if f.Complete == "true" || f.Last == "" {
			break
		}
		after = f.Last
	}
	want := *messages + 2
	if found != want {
		fail("mam", "found %d archived messages with %s, want %d", found, bobJID, want)
	}
	fmt.Println("ok mam")

	if *upload != "" {
		uploadStep(alice, bob, *upload, *addr, bobJID)
		fmt.Println("ok upload")
	}

	for _, p := range []*peer{alice, alice2, bob} {
		_ = p.client.Close()
	}
	fmt.Println("ok done")
}

// uploadStep: alice asks `service` for a slot, PUTs a file there, GETs it
// back, and sends bob the link (XEP-0066 out of band data, as go-sendxmpp's
// file sharing does). The URLs' host name is the service's, which need not
// resolve: connections go to the server's address on the URL's port (so a
// URL with a wrong port fails).
func uploadStep(alice, bob *peer, service, addr, bobJID string) {
	data := bytes.Repeat([]byte("go upload\n"), 50)
	alice.send("upload", fmt.Sprintf("<iq type='get' id='u1' to='%s'><request xmlns='%s' "+
		"filename='go.txt' size='%d' content-type='text/plain'/></iq>", service, nsUpload, len(data)))
	reply := alice.expect("upload", func(s any) bool {
		switch v := s.(type) {
		case xmpp.Slot:
			return v.ID == "u1"
		case xmpp.IQ:
			return v.ID == "u1" && v.Type == "error"
		}
		return false
	})
	slot, ok := reply.(xmpp.Slot)
	if !ok {
		fail("upload", "slot refused: %+v", reply)
	}
	serverHost, _, err := net.SplitHostPort(addr)
	if err != nil {
		fail("upload", "bad -addr %s: %v", addr, err)
	}
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, hostport string) (net.Conn, error) {
				_, port, err := net.SplitHostPort(hostport)
				if err != nil {
					return nil, err
				}
				var d net.Dialer
				return d.DialContext(ctx, network, net.JoinHostPort(serverHost, port))
			},
		},
	}
	for _, u := range []string{slot.Put.Url, slot.Get.Url} {
		parsed, err := url.Parse(u)
		if err != nil || parsed.Port() == "" || parsed.Port() == "0" {
			fail("upload", "slot URL %q has no usable port", u)
		}
	}
	put, err := http.NewRequest(http.MethodPut, slot.Put.Url, bytes.NewReader(data))
	if err != nil {
		fail("upload", "PUT request: %v", err)
	}
	for _, h := range slot.Put.Headers {
		put.Header.Set(h.Name, h.Value)
	}
	put.Header.Set("Content-Type", "text/plain")
	resp, err := client.Do(put)
	if err != nil {
		fail("upload", "PUT %s: %v", slot.Put.Url, err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		fail("upload", "PUT %s: %s", slot.Put.Url, resp.Status)
	}
	resp, err = client.Get(slot.Get.Url)
	if err != nil {
		fail("upload", "GET %s: %v", slot.Get.Url, err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || !bytes.Equal(body, data) {
		fail("upload", "GET %s: %s, %d bytes (want %d), %v", slot.Get.Url, resp.Status, len(body), len(data), err)
	}
	if _, _, err := alice.client.SendOOB(xmpp.Chat{Remote: bobJID, Type: "chat", Oob: xmpp.Oob{Url: slot.Get.Url}}); err != nil {
		fail("upload", "send link: %v", err)
	}
	bob.expect("upload", func(s any) bool {
		c, ok := s.(xmpp.Chat)
		return ok && c.Oob.Url == slot.Get.Url
	})
}
