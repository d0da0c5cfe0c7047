package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"

	"github.com/lesismal/nbio"
	"github.com/lesismal/nbio/nbhttp"
	nbws "github.com/lesismal/nbio/nbhttp/websocket"

	"github.com/heraldrt/herald/internal/protocol"
)

// wsTransport holds subscribers on /ws, read by nbio's WebSocket client
// (nbhttp/websocket), which parses frames on the event loop.
//
// The handshake is nbio's client-side HTTP (nbhttp.ClientConn) with a dial
// function of our own, then nbws.NewClientConn over the upgraded
// connection, as nbws.Dialer does: the Dialer cannot pick a connection's
// source address, which the bench needs to exceed one address's ephemeral
// ports. Only the HTTP upgrade request and the Sec-WebSocket-Accept check
// are ours; framing, masking and control frames are nbio's.
type wsTransport struct {
	f    *fleet
	opts *nbws.Options
	url  *url.URL
}

// wsConn is the transport state of one WebSocket subscriber.
type wsConn struct {
	cc *nbhttp.ClientConn
}

// Commands sent after the upgrade, as one message of two frames.
const (
	wsConnectID   = 1
	wsSubscribeID = 2
)

var (
	wsPing = []byte(`{"type":"ping"}`)
	wsPong = []byte(`{"method":"pong"}`)
)

func newWSTransport(f *fleet) *wsTransport {
	t := &wsTransport{f: f}
	o := nbws.NewOptions()
	o.Engine = f.loop.engine
	o.KeepaliveTime = 0 // liveness is Herald's ping push, answered below
	o.ReleasePayload = true
	o.OnMessage(t.onMessage)
	o.OnClose(t.onClose)
	t.opts = o
	u, _ := url.Parse(f.spec.Server) // checked by newLoop
	t.url = &url.URL{Scheme: "http", Host: u.Host, Path: "/ws"}
	return t
}

func (t *wsTransport) prepare(s *sub) {
	s.conn = &wsConn{cc: &nbhttp.ClientConn{
		Engine:  t.f.loop.engine,
		Timeout: t.f.spec.ConnectTimeout,
		Dial:    t.f.loop.dialer.dialFunc(t.f.ctx, s.idx),
	}}
}

func (t *wsTransport) open(s *sub) {
	c := s.conn.(*wsConn)
	key := make([]byte, 16)
	_, _ = rand.Read(key)
	challenge := base64.StdEncoding.EncodeToString(key)
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        t.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Host:       t.url.Host,
		Header: http.Header{
			"Upgrade":               {"websocket"},
			"Connection":            {"Upgrade"},
			"Sec-Websocket-Key":     {challenge},
			"Sec-Websocket-Version": {"13"},
		},
	}
	// Do dials here, then sends the request; the handler runs on the
	// event loop when the response head has arrived, or on failure.
	c.cc.Do(req, func(res *http.Response, conn net.Conn, err error) {
		if err != nil {
			t.f.failed(s, fmt.Errorf("websocket handshake: %w", err))
			return
		}
		// This runs with the ClientConn locked: closing it must wait.
		fail := func(err error) {
			t.f.failed(s, err)
			go c.cc.Close()
		}
		if err := checkUpgrade(res, challenge); err != nil {
			fail(err)
			return
		}
		nbc, ok := conn.(*nbio.Conn)
		if !ok {
			fail(errors.New("websocket: upgraded connection is not polled"))
			return
		}
		parser, ok := nbc.Session().(*nbhttp.Parser)
		if !ok {
			fail(errors.New("websocket: no HTTP parser on the upgraded connection"))
			return
		}
		wsc := nbws.NewClientConn(t.opts, conn, "", false, false)
		wsc.Engine = parser.Engine
		wsc.Execute = parser.Execute
		wsc.SetSession(s)
		// From here the parser hands every byte to the WebSocket conn.
		parser.ParserCloser = wsc
		nbc.SetSession(wsc)
		msg := fmt.Appendf(nil, `{"id":%d,"method":"connect","params":{}}`+"\n"+`{"id":%d,"method":"subscribe","params":{"channel":%q}}`,
			wsConnectID, wsSubscribeID, s.channel)
		if err := wsc.WriteMessage(nbws.TextMessage, msg); err != nil {
			fail(fmt.Errorf("websocket: send subscribe: %w", err))
		}
	})
}

// checkUpgrade verifies a 101 answer to a handshake with key challenge.
func checkUpgrade(res *http.Response, challenge string) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		return fmt.Errorf("websocket handshake: status %d", res.StatusCode)
	}
	if !strings.EqualFold(res.Header.Get("Upgrade"), "websocket") {
		return errors.New("websocket handshake: no Upgrade: websocket header")
	}
	h := sha1.Sum([]byte(challenge + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	if res.Header.Get("Sec-Websocket-Accept") != base64.StdEncoding.EncodeToString(h[:]) {
		return errors.New("websocket handshake: wrong Sec-WebSocket-Accept")
	}
	return nil
}

func (t *wsTransport) close(s *sub) {
	c, _ := s.conn.(*wsConn)
	if c == nil {
		return
	}
	// Closing the ClientConn closes the socket, upgraded or not; the
	// close callback then reports the end.
	c.cc.Close()
}

// onMessage handles one message: frames separated by '\n'.
func (t *wsTransport) onMessage(wsc *nbws.Conn, mt nbws.MessageType, data []byte) {
	s, ok := wsc.Session().(*sub)
	if !ok || mt != nbws.TextMessage {
		return
	}
	for len(data) > 0 {
		frame := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			frame, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		t.frame(wsc, s, frame)
	}
}

func (t *wsTransport) frame(wsc *nbws.Conn, s *sub, frame []byte) {
	switch {
	case bytes.HasPrefix(frame, []byte(`{"type":"publication"`)):
		t.f.deliver(s, frame)
	case bytes.Equal(frame, wsPing):
		_ = wsc.WriteMessage(nbws.TextMessage, wsPong)
	case bytes.HasPrefix(frame, []byte(`{"id":`)):
		var r protocol.Reply
		if err := json.Unmarshal(frame, &r); err != nil {
			t.f.failed(s, fmt.Errorf("websocket: bad reply %.64q", frame))
			_ = wsc.Close()
			return
		}
		if r.Error != nil {
			t.f.failed(s, fmt.Errorf("websocket: command %d: %v", r.ID, r.Error))
			_ = wsc.Close()
			return
		}
		if r.ID == wsSubscribeID {
			t.f.subscribed(s)
		}
	}
}

func (t *wsTransport) onClose(wsc *nbws.Conn, err error) {
	if s, ok := wsc.Session().(*sub); ok {
		t.f.closed(s, err)
	}
}
