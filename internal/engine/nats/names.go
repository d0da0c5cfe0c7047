package nats

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// names are the subjects, stream and buckets of one prefix.
type names struct {
	stream         string // history stream
	historyPrefix  string // + channel token: a channel's stored messages
	deliveryPrefix string // + channel token: a channel's live deliveries
	presence       string // bucket
	presenceStream string // the presence bucket's stream
	presenceKeys   string // + key: the subject of a presence bucket key
	idempotency    string // bucket
	control        string // control bus to every node
	nodePrefix     string // + node token: control bus to one node
}

func newNames(prefix string) names {
	return names{
		stream:         prefix + "_history",
		historyPrefix:  prefix + ".h.",
		deliveryPrefix: prefix + ".d.",
		presence:       prefix + "_presence",
		presenceStream: "KV_" + prefix + "_presence",
		presenceKeys:   "$KV." + prefix + "_presence.",
		idempotency:    prefix + "_idempotency",
		control:        prefix + ".control",
		nodePrefix:     prefix + ".node.",
	}
}

func (n *names) history(channel string) string  { return n.historyPrefix + token(channel) }
func (n *names) delivery(channel string) string { return n.deliveryPrefix + token(channel) }
func (n *names) node(id string) string          { return n.nodePrefix + token(id) }

// channelOfDelivery returns the channel whose delivery subject is subject.
func (n *names) channelOfDelivery(subject string) (string, bool) {
	tok, ok := strings.CutPrefix(subject, n.deliveryPrefix)
	if !ok {
		return "", false
	}
	ch, err := untoken(tok)
	return ch, err == nil
}

// token encodes s as one subject token, KV key token and message-id part.
// Channel names may hold '.', which separates subject tokens, and other
// bytes NATS treats specially, so every name is sent as unpadded base64url
// (letters, digits, '-' and '_'). The empty string, which base64 would
// turn into an empty token, is "=": no encoding of a non-empty name is a
// bare "=".
func token(s string) string {
	if s == "" {
		return "="
	}
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func untoken(tok string) (string, error) {
	if tok == "=" {
		return "", nil
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("bad subject token %q: %w", tok, err)
	}
	return string(b), nil
}
