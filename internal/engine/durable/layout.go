package durable

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/heraldrt/herald/internal/engine"
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
	d, err := openValue(b)
	m := meta{top: d.Uvarint(), low: d.Uvarint()}
	m.epoch = string(d.Rest())
	if err != nil || d.Err() != nil || !protocol.ValidEpoch(m.epoch) {
		return meta{}, fmt.Errorf("%w: meta", errCorrupt)
	}
	return m, nil
}

// encodePublication encodes pub with its expiry (Unix ms, 0 for never) as
// the format version, the expiry and the shared publication record; the
// channel and offset are in the key. The expiry leads so the sweep can read
// it without decoding the rest.
func encodePublication(pub *protocol.Publication, expires int64) []byte {
	b := append(make([]byte, 0, 1+binary.MaxVarintLen64), formatVersion)
	b, _ = engine.AppendPublicationRecord(binary.AppendVarint(b, expires), pub)
	return b
}

// decodeExpiry reads only a publication value's expiry.
func decodeExpiry(b []byte) (int64, error) {
	d, err := openValue(b)
	exp := d.Varint()
	if err != nil || d.Err() != nil {
		return 0, errCorrupt
	}
	return exp, nil
}

// decodePublication decodes a value made by encodePublication. The result
// does not alias b, which Pebble may reuse.
func decodePublication(channel string, offset uint64, b []byte) (*protocol.Publication, int64, error) {
	d, err := openValue(b)
	expires := d.Varint()
	pub, recErr := engine.DecodePublicationRecord(d.Rest())
	if err != nil || d.Err() != nil || recErr != nil {
		return nil, 0, fmt.Errorf("%w: publication %s@%d", errCorrupt, channel, offset)
	}
	pub.Channel, pub.Offset = channel, offset
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
	d, err := openValue(b)
	r := idempotent{offset: d.Uvarint(), expires: d.Varint()}
	if err != nil || d.Err() != nil {
		return idempotent{}, fmt.Errorf("%w: idempotency record", errCorrupt)
	}
	return r, nil
}

// openValue checks a value's leading format version and returns a decoder
// for what follows it.
func openValue(b []byte) (engine.RecordDecoder, error) {
	if len(b) == 0 || b[0] != formatVersion {
		return engine.RecordDecoder{}, errCorrupt
	}
	return engine.NewRecordDecoder(b[1:]), nil
}
