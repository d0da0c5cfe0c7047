package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/heraldrt/herald/internal/protocol"
)

// A publication record is the compact binary form engines keep a stored
// publication in: its time, data, info and tags. The channel and offset are
// not in it; the record's container (a store key, an index) holds them.
// The durable engine writes records to disk, so their bytes must not change
// without that engine's format version changing with them.

// Publication record flags.
const (
	recordHasInfo = 1 << iota
	recordHasTags
)

var errCorruptRecord = errors.New("engine: corrupt record")

// AppendPublicationRecord appends pub's record to b. It returns the extended
// slice and the record's copy of pub.Data, capped at its length so that
// appending to it copies rather than writing over what follows. When b lacks
// room it is grown once, to at least twice its length. It never writes to
// b[:len(b)].
func AppendPublicationRecord(b []byte, pub *protocol.Publication) (out, data []byte) {
	n := 2*binary.MaxVarintLen64 + 1 + len(pub.Data)
	if pub.Info != nil {
		n += 3*binary.MaxVarintLen64 + len(pub.Info.Client) + len(pub.Info.User) + len(pub.Info.Info)
	}
	if len(pub.Tags) > 0 {
		n += binary.MaxVarintLen64
		for k, v := range pub.Tags {
			n += 2*binary.MaxVarintLen64 + len(k) + len(v)
		}
	}
	if cap(b)-len(b) < n {
		// At least doubling, where append grows large slices by a quarter:
		// an arena whose front is dropped between appends stays about the
		// same length, so a quarter's room would copy it all every few
		// records.
		b = slices.Grow(b, len(b)+n)
	}
	b = binary.AppendVarint(b, pub.Time)
	var flags byte
	if pub.Info != nil {
		flags |= recordHasInfo
	}
	if len(pub.Tags) > 0 {
		flags |= recordHasTags
	}
	b = append(b, flags)
	b = appendBytes(b, pub.Data)
	data = b[len(b)-len(pub.Data) : len(b) : len(b)]
	if pub.Info != nil {
		b = appendString(b, pub.Info.Client)
		b = appendString(b, pub.Info.User)
		b = appendBytes(b, pub.Info.Info)
	}
	if len(pub.Tags) > 0 {
		b = binary.AppendUvarint(b, uint64(len(pub.Tags)))
		for k, v := range pub.Tags {
			b = appendString(b, k)
			b = appendString(b, v)
		}
	}
	return b, data
}

// DecodePublicationRecord decodes a record made by AppendPublicationRecord
// into a new publication with Channel and Offset unset. The result does not
// alias b. Bytes after the record are ignored.
func DecodePublicationRecord(b []byte) (*protocol.Publication, error) {
	d := NewRecordDecoder(b)
	pub := &protocol.Publication{Time: d.Varint()}
	flags := d.Byte()
	pub.Data = d.Bytes()
	if flags&recordHasInfo != 0 {
		pub.Info = &protocol.ClientInfo{Client: string(d.Bytes()), User: string(d.Bytes())}
		if info := d.Bytes(); len(info) > 0 {
			pub.Info.Info = info
		}
	}
	if flags&recordHasTags != 0 {
		n := d.Uvarint()
		if n > uint64(len(b)) { // each tag takes at least two bytes
			d.err = errCorruptRecord
		}
		if d.err == nil {
			pub.Tags = make(map[string]string, n)
			for range n {
				k := string(d.Bytes())
				pub.Tags[k] = string(d.Bytes())
			}
		}
	}
	if d.err != nil {
		return nil, fmt.Errorf("%w: publication", d.err)
	}
	return pub, nil
}

func appendBytes(b, v []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

func appendString(b []byte, v string) []byte {
	b = binary.AppendUvarint(b, uint64(len(v)))
	return append(b, v...)
}

// RecordDecoder reads varints and length-prefixed fields front to back, as
// records and the values that carry them are encoded. After the first error
// every read returns zero and Err stays set, so callers check once at the end.
type RecordDecoder struct {
	b   []byte
	err error
}

// NewRecordDecoder returns a decoder reading b.
func NewRecordDecoder(b []byte) RecordDecoder {
	return RecordDecoder{b: b}
}

// Err reports whether a read ran past the end or met a malformed varint.
func (d *RecordDecoder) Err() error { return d.err }

// Byte reads one byte.
func (d *RecordDecoder) Byte() byte {
	if d.err != nil || len(d.b) == 0 {
		d.err = errCorruptRecord
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

// Uvarint reads an unsigned varint.
func (d *RecordDecoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorruptRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Varint reads a signed (zig-zag) varint.
func (d *RecordDecoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errCorruptRecord
		return 0
	}
	d.b = d.b[n:]
	return v
}

// Bytes returns a copy of the next length-prefixed field.
func (d *RecordDecoder) Bytes() []byte {
	n := d.Uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err = errCorruptRecord
		return nil
	}
	v := make([]byte, n)
	copy(v, d.b)
	d.b = d.b[n:]
	return v
}

// Rest returns the unread bytes, aliasing the input, and consumes them.
func (d *RecordDecoder) Rest() []byte {
	if d.err != nil {
		return nil
	}
	v := d.b
	d.b = nil
	return v
}
