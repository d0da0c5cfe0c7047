package redis

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/heraldrt/herald/internal/protocol"
)

// What is stored and sent through Redis is a compact binary encoding, not
// JSON: publication data may be any bytes and is never re-encoded, and the
// Lua scripts only ever concatenate it with a header, never parse it.
//
// A payload (stored in history, carried in pub/sub messages) is
//
//	flags byte | data | [info] | [tags]
//
// where bit 0 of flags says info follows and bit 1 that tags follow. data is
// a length-prefixed byte string (uvarint length); info is client, user and
// info JSON as three such strings; tags are a uvarint count followed by key
// and value strings. Presence entries store an info encoding alone.
const (
	flagInfo = 1 << iota
	flagTags
)

// Pub/sub messages on a channel's Redis channel start with a kind byte.
const (
	// msgPublication is followed by "offset:epoch:time:" and a payload. The
	// header is written by the publish script, which alone knows the offset.
	msgPublication = 'p'
	msgJoin        = 'j' // followed by an info encoding
	msgLeave       = 'l' // followed by an info encoding
)

var errTruncated = errors.New("truncated")

func appendBytes(b []byte, s []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendInfo(b []byte, info *protocol.ClientInfo) []byte {
	b = appendString(b, info.Client)
	b = appendString(b, info.User)
	return appendBytes(b, info.Info)
}

// encodePayload encodes what a publish carries besides its offset, epoch and
// time.
func encodePayload(data []byte, info *protocol.ClientInfo, tags map[string]string) []byte {
	var flags byte
	if info != nil {
		flags |= flagInfo
	}
	if len(tags) > 0 {
		flags |= flagTags
	}
	b := make([]byte, 0, 1+binary.MaxVarintLen32+len(data)+16)
	b = append(b, flags)
	b = appendBytes(b, data)
	if info != nil {
		b = appendInfo(b, info)
	}
	if len(tags) > 0 {
		b = binary.AppendUvarint(b, uint64(len(tags)))
		for k, v := range tags {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b
}

// encodeInfo encodes a presence entry or a join/leave event's client.
func encodeInfo(info protocol.ClientInfo) []byte {
	return appendInfo(make([]byte, 0, 8+len(info.Client)+len(info.User)+len(info.Info)), &info)
}

// decoder reads the encoding above from a string, as rueidis hands replies
// and messages over as strings; each field read is copied once.
type decoder struct {
	s   string
	err error
}

func (d *decoder) str() string {
	if d.err != nil {
		return ""
	}
	n, k := uvarint(d.s)
	if k <= 0 || n > uint64(len(d.s)-k) {
		d.err = errTruncated
		return ""
	}
	v := d.s[k : k+int(n)]
	d.s = d.s[k+int(n):]
	return v
}

func (d *decoder) bytes() []byte {
	s := d.str()
	if s == "" {
		return nil
	}
	return []byte(s)
}

func (d *decoder) count() int {
	if d.err != nil {
		return 0
	}
	n, k := uvarint(d.s)
	// Each counted item takes at least two bytes, which bounds n before
	// anything is allocated for it.
	if k <= 0 || n > uint64(len(d.s)-k)/2 {
		d.err = errTruncated
		return 0
	}
	d.s = d.s[k:]
	return int(n)
}

func (d *decoder) info() protocol.ClientInfo {
	return protocol.ClientInfo{Client: d.str(), User: d.str(), Info: d.bytes()}
}

// uvarint is binary.Uvarint for a string, without converting it to bytes.
func uvarint(s string) (uint64, int) {
	var x uint64
	var shift uint
	for i := 0; i < len(s) && i < binary.MaxVarintLen64; i++ {
		c := s[i]
		if c < 0x80 {
			return x | uint64(c)<<shift, i + 1
		}
		x |= uint64(c&0x7f) << shift
		shift += 7
	}
	return 0, 0
}

// decodePayload fills pub's data, info and tags from a payload.
func decodePayload(pub *protocol.Publication, payload string) error {
	if payload == "" {
		return fmt.Errorf("decode publication: %w", errTruncated)
	}
	flags := payload[0]
	d := decoder{s: payload[1:]}
	pub.Data = d.bytes()
	if flags&flagInfo != 0 {
		info := d.info()
		pub.Info = &info
	}
	if flags&flagTags != 0 {
		n := d.count()
		pub.Tags = make(map[string]string, n)
		for range n {
			k := d.str()
			pub.Tags[k] = d.str()
		}
	}
	if d.err != nil {
		return fmt.Errorf("decode publication: %w", d.err)
	}
	return nil
}

// decodeInfo decodes an info encoding.
func decodeInfo(s string) (protocol.ClientInfo, error) {
	d := decoder{s: s}
	info := d.info()
	if d.err != nil {
		return protocol.ClientInfo{}, fmt.Errorf("decode client info: %w", d.err)
	}
	return info, nil
}

// publicationHeader is the header of a publication message as the publish
// script writes it; Go writes it only for unstored publications, which have
// offset 0 and no epoch.
func publicationHeader(offset uint64, epoch string, timeMs int64) string {
	return string(msgPublication) + strconv.FormatUint(offset, 10) + ":" + epoch + ":" + strconv.FormatInt(timeMs, 10) + ":"
}

// decodePublication decodes a publication message (without its kind byte)
// for channel.
func decodePublication(channel, msg string) (*protocol.Publication, string, error) {
	fields := strings.SplitN(msg, ":", 4)
	if len(fields) != 4 {
		return nil, "", fmt.Errorf("decode publication message: %w", errTruncated)
	}
	offset, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return nil, "", fmt.Errorf("decode publication offset: %w", err)
	}
	t, err := strconv.ParseInt(fields[2], 10, 64)
	if err != nil {
		return nil, "", fmt.Errorf("decode publication time: %w", err)
	}
	pub := &protocol.Publication{Channel: channel, Offset: offset, Time: t}
	if err := decodePayload(pub, fields[3]); err != nil {
		return nil, "", err
	}
	return pub, fields[1], nil
}
