package durable

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/heraldrt/herald/internal/protocol"
)

// Key layout. Every key starts with a kind byte, so each kind is one
// contiguous key range:
//
//	'm' channel                      → meta: epoch, top offset, low offset
//	'p' channel 0x00 offset (8, BE)  → one publication
//	'i' channel 0x00 idempotency key → idempotency record: offset, expiry
//
// Channel names cannot contain 0x00 (protocol.ValidChannel), so the separator
// gives each channel a key range no other channel's keys fall into, and
// big-endian offsets sort numerically within it.
const (
	kindMeta = 'm'
	kindPub  = 'p'
	kindIdem = 'i'
)

// formatVersion leads every value so a later layout can be told apart.
const formatVersion = 1

var errCorrupt = errors.New("durable: corrupt value")

func metaKey(channel string) []byte {
	k := make([]byte, 0, 1+len(channel))
	k = append(k, kindMeta)
	return append(k, channel...)
}

func pubKey(channel string, offset uint64) []byte {
	k := make([]byte, 0, 1+len(channel)+1+8)
	k = append(k, kindPub)
	k = append(k, channel...)
	k = append(k, 0)
	return binary.BigEndian.AppendUint64(k, offset)
}

func idemKey(channel, key string) []byte {
	k := make([]byte, 0, 1+len(channel)+1+len(key))
	k = append(k, kindIdem)
	k = append(k, channel...)
	k = append(k, 0)
	return append(k, key...)
}

// meta is a channel's persistent state. Publications low..top may be stored;
// low > top means none are. top never decreases, so offsets are never reused.
type meta struct {
	epoch string
	top   uint64
	low   uint64
}

func encodeMeta(m meta) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(m.epoch))
	b = append(b, formatVersion)
	b = binary.AppendUvarint(b, m.top)
	b = binary.AppendUvarint(b, m.low)
	return append(b, m.epoch...)
}

func decodeMeta(b []byte) (meta, error) {
	d := decoder{b: b}
	d.version()
	m := meta{top: d.uvarint(), low: d.uvarint()}
	m.epoch = string(d.rest())
	if d.err != nil || !protocol.ValidEpoch(m.epoch) {
		return meta{}, fmt.Errorf("%w: meta", errCorrupt)
	}
	return m, nil
}

// Publication value flags.
const (
	hasInfo = 1 << iota
	hasTags
)

// encodePublication encodes pub with its expiry (Unix ms, 0 for never); the
// channel and offset are in the key. The expiry leads so the sweep can read
// it without decoding the rest.
func encodePublication(pub *protocol.Publication, expires int64) []byte {
	n := 1 + 3*binary.MaxVarintLen64 + 1 + len(pub.Data)
	if pub.Info != nil {
		n += 3*binary.MaxVarintLen64 + len(pub.Info.Client) + len(pub.Info.User) + len(pub.Info.Info)
	}
	for k, v := range pub.Tags {
		n += 2*binary.MaxVarintLen64 + len(k) + len(v)
	}
	b := make([]byte, 0, n)
	b = append(b, formatVersion)
	b = binary.AppendVarint(b, expires)
	b = binary.AppendVarint(b, pub.Time)
	var flags byte
	if pub.Info != nil {
		flags |= hasInfo
	}
	if len(pub.Tags) > 0 {
		flags |= hasTags
	}
	b = append(b, flags)
	b = appendBytes(b, pub.Data)
	if pub.Info != nil {
		b = appendBytes(b, []byte(pub.Info.Client))
		b = appendBytes(b, []byte(pub.Info.User))
		b = appendBytes(b, pub.Info.Info)
	}
	if len(pub.Tags) > 0 {
		b = binary.AppendUvarint(b, uint64(len(pub.Tags)))
		for k, v := range pub.Tags {
			b = appendBytes(b, []byte(k))
			b = appendBytes(b, []byte(v))
		}
	}
	return b
}

// decodeExpiry reads only a publication value's expiry.
func decodeExpiry(b []byte) (int64, error) {
	d := decoder{b: b}
	d.version()
	exp := d.varint()
	return exp, d.err
}

// decodePublication decodes a value made by encodePublication. The result
// does not alias b, which Pebble may reuse.
func decodePublication(channel string, offset uint64, b []byte) (*protocol.Publication, int64, error) {
	d := decoder{b: b}
	d.version()
	expires := d.varint()
	pub := &protocol.Publication{Channel: channel, Offset: offset, Time: d.varint()}
	flags := d.byte()
	pub.Data = d.bytes()
	if flags&hasInfo != 0 {
		pub.Info = &protocol.ClientInfo{Client: string(d.bytes()), User: string(d.bytes())}
		if info := d.bytes(); len(info) > 0 {
			pub.Info.Info = info
		}
	}
	if flags&hasTags != 0 {
		n := d.uvarint()
		if n > uint64(len(b)) { // each tag takes at least two bytes
			d.err = errCorrupt
		}
		if d.err == nil {
			pub.Tags = make(map[string]string, n)
			for range n {
				k := string(d.bytes())
				pub.Tags[k] = string(d.bytes())
			}
		}
	}
	if d.err != nil {
		return nil, 0, fmt.Errorf("%w: publication %s@%d", errCorrupt, channel, offset)
	}
	return pub, expires, nil
}

// idempotent is a stored idempotency record: the offset the first publish
// got, until expires (Unix ms). The epoch is the channel's, which never
// changes within a store.
type idempotent struct {
	offset  uint64
	expires int64
}

func encodeIdempotent(r idempotent) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64)
	b = append(b, formatVersion)
	b = binary.AppendUvarint(b, r.offset)
	return binary.AppendVarint(b, r.expires)
}

func decodeIdempotent(b []byte) (idempotent, error) {
	d := decoder{b: b}
	d.version()
	r := idempotent{offset: d.uvarint(), expires: d.varint()}
	if d.err != nil {
		return idempotent{}, fmt.Errorf("%w: idempotency record", errCorrupt)
	}
	return r, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// decoder reads a value front to back; after the first error every read
// returns zero and err stays set, so callers check once at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) version() {
	if d.byte() != formatVersion && d.err == nil {
		d.err = errCorrupt
	}
}

func (d *decoder) byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns a copy of the next length-prefixed field.
func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorrupt
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

func (d *decoder) rest() []byte {
	if d.err != nil {
		return nil
	}
	v := d.b
	d.b = nil
	return v
}
