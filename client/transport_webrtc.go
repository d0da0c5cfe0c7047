package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/pion/webrtc/v4"
)

// Data channel labels the server expects (internal/transport/webrtc).
const (
	labelReliable = "herald"
	labelLatest   = "herald-latest"
)

// webrtcAPI gives peer connections to the server short ICE timeouts: a
// server that vanished (a node killed) is noticed within seconds, as a
// WebSocket's reset connection would be, and the client resumes on another.
var webrtcAPI = func() *webrtc.API {
	var se webrtc.SettingEngine
	se.SetICETimeouts(3*time.Second, 6*time.Second, time.Second)
	return webrtc.NewAPI(webrtc.WithSettingEngine(se))
}()

// dialWebRTC opens a peer connection to the server: it offers a reliable
// ordered channel for the protocol and an unreliable unordered one for
// latest-only publications, posts the offer with its candidates to
// /webrtc, and waits for the reliable channel to open.
func (c *Client) dialWebRTC(ctx context.Context) (messageConn, error) {
	pc, err := webrtcAPI.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, &endReason{reason: "webrtc peer connection", err: err}
	}
	m := &dcMessages{pc: pc, in: make(chan []byte), opened: make(chan struct{}), closed: make(chan struct{})}
	ok := false
	defer func() {
		if !ok {
			m.Close()
		}
	}()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateFailed || s == webrtc.PeerConnectionStateClosed {
			m.end(fmt.Errorf("peer connection %s", s))
		}
	})
	if m.dc, err = pc.CreateDataChannel(labelReliable, nil); err != nil {
		return nil, &endReason{reason: "webrtc data channel", err: err}
	}
	unordered, none := false, uint16(0)
	latest, err := pc.CreateDataChannel(labelLatest, &webrtc.DataChannelInit{Ordered: &unordered, MaxRetransmits: &none})
	if err != nil {
		return nil, &endReason{reason: "webrtc data channel", err: err}
	}
	m.dc.OnOpen(func() { close(m.opened) })
	m.dc.OnClose(func() { m.end(errors.New("data channel closed")) })
	m.dc.OnMessage(m.receive)
	latest.OnMessage(m.receive)

	offer, err := pc.CreateOffer(nil)
	if err != nil {
		return nil, &endReason{reason: "webrtc offer", err: err}
	}
	gathered := webrtc.GatheringCompletePromise(pc)
	if err := pc.SetLocalDescription(offer); err != nil {
		return nil, &endReason{reason: "webrtc offer", err: err}
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return nil, &endReason{reason: "gathering ICE candidates", err: ctx.Err()}
	}
	answer, err := c.postOffer(ctx, *pc.LocalDescription())
	if err != nil {
		return nil, err
	}
	if err := pc.SetRemoteDescription(answer); err != nil {
		return nil, &endReason{reason: "webrtc answer", err: err}
	}
	select {
	case <-m.opened:
	case <-m.closed:
		return nil, &endReason{reason: "webrtc connect", err: m.err}
	case <-ctx.Done():
		return nil, &endReason{reason: "webrtc connect", err: ctx.Err()}
	}
	ok = true
	return m, nil
}

// postOffer exchanges the offer for the server's answer.
func (c *Client) postOffer(ctx context.Context, offer webrtc.SessionDescription) (webrtc.SessionDescription, error) {
	var answer webrtc.SessionDescription
	body, err := json.Marshal(offer)
	if err != nil {
		return answer, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/webrtc", bytes.NewReader(body))
	if err != nil {
		return answer, err
	}
	for k, v := range c.cfg.Header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.hc.Do(req)
	if err != nil {
		return answer, &endReason{reason: "webrtc offer", err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		r := httpEndReason(responseError(resp))
		r.reason = "webrtc offer"
		return answer, r
	}
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer, &endReason{reason: "webrtc offer", err: err}
	}
	if err := json.Unmarshal(raw, &answer); err != nil || answer.Type != webrtc.SDPTypeAnswer {
		return answer, &endReason{reason: "webrtc offer", err: fmt.Errorf("not an answer: %.200s", raw)}
	}
	return answer, nil
}

// dcMessages is a messageConn on a peer connection's data channels.
// Messages of both channels arrive in one stream; pion's reading goroutine
// waits for Read to take each, so a slow reader slows the sender through
// SCTP's flow control instead of queueing here.
type dcMessages struct {
	pc     *webrtc.PeerConnection
	dc     *webrtc.DataChannel
	in     chan []byte
	opened chan struct{}

	once   sync.Once
	closed chan struct{}
	err    error // why; set before closed is closed
}

func (m *dcMessages) receive(msg webrtc.DataChannelMessage) {
	if !msg.IsString {
		return
	}
	select {
	case m.in <- msg.Data:
	case <-m.closed:
	}
}

func (m *dcMessages) end(err error) {
	m.once.Do(func() {
		m.err = err
		close(m.closed)
	})
}

func (m *dcMessages) Read(ctx context.Context) ([]byte, error) {
	select {
	case msg := <-m.in:
		return msg, nil
	case <-m.closed:
		return nil, m.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// maxWriteBacklog bounds what the client queues for a server that does not
// acknowledge it; pion's queue has no bound of its own.
const maxWriteBacklog = 4 << 20

func (m *dcMessages) Write(_ context.Context, msg []byte) error {
	select {
	case <-m.closed:
		return m.err
	default:
	}
	if m.dc.BufferedAmount() > maxWriteBacklog {
		return fmt.Errorf("more than %d bytes wait for the server to take them", maxWriteBacklog)
	}
	return m.dc.SendText(string(msg))
}

func (m *dcMessages) Close() {
	m.end(errors.New("connection closed"))
	_ = m.pc.Close()
}
