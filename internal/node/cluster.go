package node

import (
	"context"
	"encoding/json"
	"path"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/heraldrt/herald/internal/protocol"
)

// The control bus carries JSON messages between nodes. Every node announces
// itself at Config.NodeHeartbeat; peers unheard of for three heartbeats are
// dropped from the cluster view, so a node killed with -9 vanishes from
// Info within seconds. Requests that need an answer from every node (a
// user's connections) are surveys: one broadcast, one reply per node sent
// back to the asker alone.
const (
	controlNodeInfo    = "node_info"
	controlNodeLeave   = "node_leave"
	controlDisconnect  = "disconnect"
	controlSurvey      = "survey"
	controlSurveyReply = "survey_reply"
	controlUnsubscribe = "unsubscribe"
)

// Surveys: the connections matching a filter, and the channels with
// subscribers matching a pattern.
const (
	surveyConnections = "connections"
	surveyChannels    = "channels"
)

// maxSurveyChannels bounds the channels one node reports in a channels
// survey, so that one reply stays a small control message.
const maxSurveyChannels = 10000

// MaxListedConnections bounds the connections one node lists in a
// connections answer, for the same reason: a listing without a filter, or
// by a crowded channel, would otherwise carry every connection.
const MaxListedConnections = 1000

// maxSurveyConnectionBytes bounds the size of those answers too, as
// connections with many channels make large entries; it stays under the
// smallest engine message limit (NATS's 1 MB by default).
const maxSurveyConnectionBytes = 512 << 10

// maxSurveyReplies bounds the survey replies a node works on at once; a
// node flooded with surveys drops the excess rather than pile up goroutines.
const maxSurveyReplies = 16

type controlMessage struct {
	Type string `json:"type"`
	From string `json:"from"`
	Node *Info  `json:"node,omitempty"`
	// Disconnect and survey filters.
	User      string `json:"user,omitempty"`
	Client    string `json:"client,omitempty"`
	Channel   string `json:"channel,omitempty"`
	Reconnect bool   `json:"reconnect,omitempty"`
	// Signals: the recipient is Client, the room Channel.
	Frame json.RawMessage `json:"frame,omitempty"`
	// Surveys.
	SurveyID    string           `json:"survey_id,omitempty"`
	Op          string           `json:"op,omitempty"`
	Connections []ConnectionInfo `json:"connections,omitempty"`
	// Channels surveys: the pattern asked for, and the counts answered.
	Pattern   string         `json:"pattern,omitempty"`
	Channels  map[string]int `json:"channels,omitempty"`
	Truncated bool           `json:"truncated,omitempty"`
}

// ConnectionInfo describes one client connection somewhere in the cluster.
type ConnectionInfo struct {
	Client      string    `json:"client"`
	User        string    `json:"user"`
	Node        string    `json:"node"`
	Transport   string    `json:"transport"`
	Channels    []string  `json:"channels"`
	ConnectedAt time.Time `json:"connected_at"`
}

// ConnectionFilter selects connections; empty fields match everything.
type ConnectionFilter struct {
	User    string
	Client  string
	Channel string
}

func (f ConnectionFilter) matches(s *Session) bool {
	if f.User != "" && s.cred.UserID != f.User {
		return false
	}
	if f.Client != "" && s.id != f.Client {
		return false
	}
	return true
}

// matchingSessions returns this node's sessions matching f's user and
// client (not its channel), looking a client up by id rather than scanning
// every session.
func (n *Node) matchingSessions(f ConnectionFilter) []*Session {
	if f.Client != "" {
		if s := n.sessions.get(f.Client); s != nil && f.matches(s) {
			return []*Session{s}
		}
		return nil
	}
	all := n.sessions.all()
	if f.User == "" {
		return all
	}
	return slices.DeleteFunc(all, func(s *Session) bool { return !f.matches(s) })
}

// cluster is this node's view of its peers and its surveys in flight.
type cluster struct {
	mu      sync.Mutex
	peers   map[string]peer
	surveys map[string]*survey
	// stopped is set by Shutdown before it waits for wg, so no survey
	// reply starts after the wait begins.
	stopped bool
	// replying bounds concurrent survey replies; unsubscribing, the
	// server-side unsubscribes in flight.
	replying      chan struct{}
	unsubscribing chan struct{}
	wg            sync.WaitGroup
}

type peer struct {
	info   Info
	seenAt time.Time
}

type survey struct {
	waiting map[string]bool
	// onReply merges one node's answer; it runs with cluster.mu held.
	onReply func(controlMessage)
	done    chan struct{}
}

func (c *cluster) init() {
	c.peers = make(map[string]peer)
	c.surveys = make(map[string]*survey)
	c.replying = make(chan struct{}, maxSurveyReplies)
	c.unsubscribing = make(chan struct{}, maxUnsubscribing)
}

// heartbeatLoop announces the node until done is closed, then says goodbye
// so peers drop it at once instead of after the TTL.
func (n *Node) heartbeatLoop() {
	defer n.cluster.wg.Done()
	t := time.NewTicker(n.cfg.NodeHeartbeat)
	defer t.Stop()
	for {
		info := n.Info()
		n.sendControl(controlMessage{Type: controlNodeInfo, Node: &info}, "")
		select {
		case <-n.done:
			n.sendControl(controlMessage{Type: controlNodeLeave}, "")
			return
		case <-t.C:
		}
	}
}

func (n *Node) sendControl(m controlMessage, toNode string) {
	m.From = n.id
	data, err := json.Marshal(m)
	if err != nil {
		n.log.Error("control message does not encode", "type", m.Type, "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), n.cfg.NodeHeartbeat)
	defer cancel()
	if err := n.engine.PublishControl(ctx, data, toNode); err != nil {
		n.log.Warn("control message not sent", "type", m.Type, "to", toNode, "err", err)
	}
}

// handleControl runs on the engine's delivery path: anything that needs I/O
// moves to a goroutine.
func (n *Node) handleControl(data []byte) {
	var m controlMessage
	if err := json.Unmarshal(data, &m); err != nil || m.From == "" {
		n.log.Warn("malformed control message dropped", "bytes", len(data))
		return
	}
	switch m.Type {
	case controlNodeInfo:
		if m.Node == nil || m.From == n.id {
			return
		}
		n.cluster.mu.Lock()
		n.cluster.peers[m.From] = peer{info: *m.Node, seenAt: time.Now()}
		n.cluster.mu.Unlock()
	case controlNodeLeave:
		n.cluster.mu.Lock()
		delete(n.cluster.peers, m.From)
		n.cluster.mu.Unlock()
	case controlDisconnect:
		n.disconnectLocal(ConnectionFilter{User: m.User, Client: m.Client}, m.Reconnect)
	case controlUnsubscribe:
		n.unsubscribeLocal(m)
	case controlSignal:
		if m.From != n.id && m.Client != "" && len(m.Frame) > 0 {
			n.deliverSignal(m.Client, m.Channel, m.Frame)
		}
	case controlSurvey:
		if m.From != n.id {
			n.answerSurvey(m)
		}
	case controlSurveyReply:
		n.cluster.mu.Lock()
		if sv := n.cluster.surveys[m.SurveyID]; sv != nil && sv.waiting[m.From] {
			delete(sv.waiting, m.From)
			sv.onReply(m)
			if len(sv.waiting) == 0 {
				close(sv.done)
			}
		}
		n.cluster.mu.Unlock()
	default:
		n.log.Debug("unknown control message ignored", "type", m.Type)
	}
}

func (n *Node) answerSurvey(m controlMessage) {
	if m.Op != surveyConnections && m.Op != surveyChannels {
		return
	}
	n.goBounded(n.cluster.replying, func() {
		reply := controlMessage{Type: controlSurveyReply, SurveyID: m.SurveyID}
		if m.Op == surveyChannels {
			reply.Channels, reply.Truncated = n.localChannels(m.Pattern)
		} else {
			reply.Connections, reply.Truncated = n.localConnections(ConnectionFilter{User: m.User, Client: m.Client, Channel: m.Channel})
		}
		n.sendControl(reply, m.From)
	}, "survey", "from", m.From)
}

// goBounded runs work on a goroutine that the cluster's stop waits for,
// holding one of sem's slots meanwhile. With every slot taken it drops
// work and logs the dropped what with args; once the node is stopping it
// drops work quietly.
func (n *Node) goBounded(sem chan struct{}, work func(), what string, args ...any) {
	select {
	case sem <- struct{}{}:
	default:
		n.log.Warn(what+" dropped: too many in flight", args...)
		return
	}
	n.cluster.mu.Lock()
	if n.cluster.stopped {
		n.cluster.mu.Unlock()
		<-sem
		return
	}
	n.cluster.wg.Add(1)
	n.cluster.mu.Unlock()
	go func() {
		defer n.cluster.wg.Done()
		defer func() { <-sem }()
		work()
	}()
}

// stop waits for the heartbeat (which says goodbye once n.done is closed),
// the survey replies and the server-side unsubscribes in flight.
func (c *cluster) stop() {
	c.mu.Lock()
	c.stopped = true
	c.mu.Unlock()
	c.wg.Wait()
}

// liveNodes returns this node's and every live peer's info, ordered by id.
func (n *Node) liveNodes() []Info {
	deadline := time.Now().Add(-3 * n.cfg.NodeHeartbeat)
	out := []Info{n.Info()}
	n.cluster.mu.Lock()
	for id, p := range n.cluster.peers {
		if p.seenAt.Before(deadline) {
			delete(n.cluster.peers, id)
			continue
		}
		out = append(out, p.info)
	}
	n.cluster.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Nodes lists every live node of the cluster, this one included.
func (n *Node) Nodes() []Info { return n.liveNodes() }

// Disconnect closes the matching connections on every node. With reconnect
// the clients come back (and resume); without, they are told not to.
func (n *Node) Disconnect(ctx context.Context, f ConnectionFilter, reconnect bool) error {
	if f.User == "" && f.Client == "" {
		return protocol.ErrBadRequest.With("user or client required")
	}
	return n.broadcastControl(ctx, controlMessage{Type: controlDisconnect, User: f.User, Client: f.Client, Reconnect: reconnect})
}

// broadcastControl sends m to every node, this one included, and reports
// the engine's failure to the caller, unlike sendControl.
func (n *Node) broadcastControl(ctx context.Context, m controlMessage) error {
	m.From = n.id
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := n.engine.PublishControl(ctx, data, ""); err != nil {
		return n.engineError(m.Type, err)
	}
	return nil
}

func (n *Node) disconnectLocal(f ConnectionFilter, reconnect bool) {
	if f.User == "" && f.Client == "" {
		return
	}
	d := protocol.DisconnectForceNoReconnect
	if reconnect {
		d = protocol.DisconnectForced
	}
	for _, s := range n.matchingSessions(f) {
		s.Close(d)
	}
}

// localConnections lists this node's connections matching f, at most
// MaxListedConnections of them and about maxSurveyConnectionBytes of JSON,
// and says whether some were left out.
func (n *Node) localConnections(f ConnectionFilter) ([]ConnectionInfo, bool) {
	var out []ConnectionInfo
	size := 0 // roughly, the listing's JSON bytes
	for _, s := range n.matchingSessions(f) {
		s.mu.Lock()
		if s.state != stateConnected {
			s.mu.Unlock()
			continue
		}
		channels := make([]string, 0, s.subs.len())
		for sub := range s.subs.all() {
			channels = append(channels, sub.channel)
		}
		s.mu.Unlock()
		if f.Channel != "" && !slices.Contains(channels, f.Channel) {
			continue
		}
		entry := len(s.id) + len(s.cred.UserID) + len(n.id) + 150
		for _, ch := range channels {
			entry += len(ch) + 3
		}
		if len(out) >= MaxListedConnections || size+entry > maxSurveyConnectionBytes {
			return out, true
		}
		size += entry
		sort.Strings(channels)
		out = append(out, ConnectionInfo{
			Client:      s.id,
			User:        s.cred.UserID,
			Node:        n.id,
			Transport:   s.t.Name(),
			Channels:    channels,
			ConnectedAt: time.Unix(0, s.connectedAt),
		})
	}
	return out, false
}

// ConnectionsResult is a cluster-wide connection listing. Missing names the
// live nodes that did not answer in time: their connections are not listed.
// Truncated says some node had more matching connections than it may list
// (MaxListedConnections) and listed only part of them.
type ConnectionsResult struct {
	Connections []ConnectionInfo `json:"connections"`
	Missing     []string         `json:"missing_nodes,omitempty"`
	Truncated   bool             `json:"truncated,omitempty"`
}

// Connections lists the matching connections on every live node, as
// ClusterConnections does, but refuses an empty filter: the server API
// looks connections up rather than browse them.
func (n *Node) Connections(ctx context.Context, f ConnectionFilter) (ConnectionsResult, error) {
	if f.User == "" && f.Client == "" && f.Channel == "" {
		return ConnectionsResult{}, protocol.ErrBadRequest.With("user, client or channel required")
	}
	return n.ClusterConnections(ctx, f)
}

// ClusterConnections lists the connections matching f (an empty filter
// matches all) on every live node, at most MaxListedConnections per node,
// waiting for each node's answer until ctx ends. A node that stays silent
// is named in the result rather than failing the whole call.
func (n *Node) ClusterConnections(ctx context.Context, f ConnectionFilter) (ConnectionsResult, error) {
	local, truncated := n.localConnections(f)
	var remote []ConnectionInfo
	missing, err := n.runSurvey(ctx, controlMessage{Op: surveyConnections, User: f.User, Client: f.Client, Channel: f.Channel},
		func(m controlMessage) {
			remote = append(remote, m.Connections...)
			truncated = truncated || m.Truncated
		})
	if err != nil {
		return ConnectionsResult{}, err
	}
	return ConnectionsResult{Connections: sortConnections(append(local, remote...)), Missing: missing, Truncated: truncated}, nil
}

// runSurvey asks every other live node the question in q (its Op and
// filters) and hands each answer to onReply, one at a time, until every
// node answered or ctx ends. It returns the nodes that did not answer,
// sorted. With no other node it returns at once.
func (n *Node) runSurvey(ctx context.Context, q controlMessage, onReply func(controlMessage)) ([]string, error) {
	id := newID()
	sv := &survey{waiting: make(map[string]bool), onReply: onReply, done: make(chan struct{})}
	for _, info := range n.liveNodes() {
		if info.ID != n.id {
			sv.waiting[info.ID] = true
		}
	}
	if len(sv.waiting) == 0 {
		return nil, nil
	}
	n.cluster.mu.Lock()
	n.cluster.surveys[id] = sv
	n.cluster.mu.Unlock()
	defer func() {
		n.cluster.mu.Lock()
		delete(n.cluster.surveys, id)
		n.cluster.mu.Unlock()
	}()
	q.Type, q.SurveyID = controlSurvey, id
	// Sent to every node: the engines have no multicast, and a node ignores
	// its own surveys.
	if err := n.broadcastControl(ctx, q); err != nil {
		return nil, err
	}
	select {
	case <-sv.done:
	case <-ctx.Done():
	}
	n.cluster.mu.Lock()
	var missing []string
	for id := range sv.waiting {
		missing = append(missing, id)
	}
	n.cluster.mu.Unlock()
	sort.Strings(missing)
	return missing, nil
}

// localChannels returns this node's channels matching pattern (a path.Match
// glob; empty matches all) with their subscriber counts, at most
// maxSurveyChannels of them, and whether some were left out.
func (n *Node) localChannels(pattern string) (map[string]int, bool) {
	out := make(map[string]int)
	truncated := false
	n.hub.channelCounts(func(ch string, subs int) {
		if pattern != "" {
			if ok, _ := path.Match(pattern, ch); !ok {
				return
			}
		}
		if len(out) >= maxSurveyChannels {
			truncated = true
			return
		}
		out[ch] = subs
	})
	return out, truncated
}

// ChannelCount is one channel's subscribers across the cluster.
type ChannelCount struct {
	NumSubscribers int `json:"num_subscribers"`
	// NumNodes counts the nodes with local subscribers.
	NumNodes int `json:"num_nodes"`
}

// ClusterChannelsResult lists the channels with subscribers on any node.
// Missing names the live nodes that did not answer in time; Truncated says
// some node had more than maxSurveyChannels matching channels and listed
// only that many.
type ClusterChannelsResult struct {
	Channels  map[string]ChannelCount `json:"channels"`
	Missing   []string                `json:"missing_nodes,omitempty"`
	Truncated bool                    `json:"truncated,omitempty"`
}

// ClusterChannels lists the channels matching pattern (a path.Match glob;
// empty matches all) that have subscribers on any live node, with their
// counts summed over the nodes, waiting for each node's answer until ctx
// ends.
func (n *Node) ClusterChannels(ctx context.Context, pattern string) (ClusterChannelsResult, error) {
	if _, err := path.Match(pattern, ""); err != nil {
		return ClusterChannelsResult{}, protocol.ErrBadRequest.With("pattern %q: %v", truncate(pattern, 64), err)
	}
	res := ClusterChannelsResult{Channels: make(map[string]ChannelCount)}
	merge := func(counts map[string]int, truncated bool) {
		for ch, subs := range counts {
			c := res.Channels[ch]
			c.NumSubscribers += subs
			c.NumNodes++
			res.Channels[ch] = c
		}
		res.Truncated = res.Truncated || truncated
	}
	merge(n.localChannels(pattern))
	missing, err := n.runSurvey(ctx, controlMessage{Op: surveyChannels, Pattern: pattern},
		func(m controlMessage) { merge(m.Channels, m.Truncated) })
	if err != nil {
		return ClusterChannelsResult{}, err
	}
	res.Missing = missing
	return res, nil
}

func sortConnections(c []ConnectionInfo) []ConnectionInfo {
	sort.Slice(c, func(i, j int) bool {
		if c[i].Node != c[j].Node {
			return c[i].Node < c[j].Node
		}
		return c[i].Client < c[j].Client
	})
	if c == nil {
		c = []ConnectionInfo{}
	}
	return c
}

// personalChannel names user's personal channel, if personal channels are on
// and the user id makes a valid channel name.
func (n *Node) personalChannel(user string) (string, bool) {
	if n.cfg.PersonalNamespace == "" || user == "" {
		return "", false
	}
	ch := n.cfg.PersonalNamespace + ":#" + user
	return ch, protocol.ValidChannel(ch)
}

// SendToUser publishes data on user's personal channel, which every one of
// the user's connections, on any node, is subscribed to.
func (n *Node) SendToUser(ctx context.Context, user string, data []byte, ephemeral bool) (protocol.PublishResult, error) {
	if n.cfg.PersonalNamespace == "" {
		return protocol.PublishResult{}, protocol.ErrNotAvailable.With("personal channels are off: set personal_namespace")
	}
	ch, ok := n.personalChannel(user)
	if !ok {
		return protocol.PublishResult{}, protocol.ErrBadRequest.With("user %q makes no valid channel name", truncate(user, 64))
	}
	return n.Publish(ctx, protocol.PublishRequest{Channel: ch, Data: data, Ephemeral: ephemeral})
}
