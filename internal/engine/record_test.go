package engine

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"

	"github.com/heraldrt/herald/internal/protocol"
)

var recordPubs = []*protocol.Publication{
	{Data: json.RawMessage(`{"x":1}`), Time: 1700000000123},
	{
		Data: json.RawMessage(`"s"`), Time: -5,
		Info: &protocol.ClientInfo{Client: "c", User: "u", Info: json.RawMessage(`{"n":"ann"}`)},
		Tags: map[string]string{"a": "1", "b": ""},
	},
	{Info: &protocol.ClientInfo{Client: "c"}},
}

// Records appended back to back must each decode to what was appended,
// leaving the bytes before them untouched.
func TestPublicationRecordRoundTrip(t *testing.T) {
	prefix := []byte("prefix")
	b := append([]byte(nil), prefix...)
	var starts []int
	var views [][]byte
	for _, p := range recordPubs {
		starts = append(starts, len(b))
		var data []byte
		b, data = AppendPublicationRecord(b, p)
		views = append(views, data)
	}
	if !bytes.HasPrefix(b, prefix) {
		t.Fatalf("appending changed the bytes before the records: %q", b[:len(prefix)])
	}
	starts = append(starts, len(b))
	for i, want := range recordPubs {
		rec := b[starts[i]:starts[i+1]]
		got, err := DecodePublicationRecord(rec)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		if got.Time != want.Time || string(got.Data) != string(want.Data) || !maps.Equal(got.Tags, want.Tags) ||
			(got.Info == nil) != (want.Info == nil) {
			t.Fatalf("record %d: got %+v, want %+v", i, got, want)
		}
		if want.Info != nil && (got.Info.Client != want.Info.Client || got.Info.User != want.Info.User ||
			string(got.Info.Info) != string(want.Info.Info)) {
			t.Fatalf("record %d info: got %+v, want %+v", i, got.Info, want.Info)
		}
		data := views[i]
		if string(data) != string(want.Data) {
			t.Fatalf("record %d data view: %q, want %q", i, data, want.Data)
		}
		// Decoded fields are copies; the data view is capped so appending
		// copies instead of overwriting the next record.
		if len(got.Data) > 0 {
			got.Data[0] = '!'
		}
		_ = append(data, "!!!!!!!!"...)
		if again, err := DecodePublicationRecord(rec); err != nil || string(again.Data) != string(want.Data) {
			t.Fatalf("record %d changed through a decoded publication: %q, %v", i, again.Data, err)
		}
		if i+1 < len(recordPubs) {
			if _, err := DecodePublicationRecord(b[starts[i+1]:]); err != nil {
				t.Fatalf("record %d changed through its data view: %v", i+1, err)
			}
		}
	}
}

// Every truncation of a record must decode to an error, not a panic or a
// wrong publication.
func TestTruncatedRecordsAreErrors(t *testing.T) {
	full, _ := AppendPublicationRecord(nil, recordPubs[1])
	for n := range len(full) {
		if _, err := DecodePublicationRecord(full[:n]); err == nil {
			t.Fatalf("record truncated to %d of %d bytes decoded without error", n, len(full))
		}
	}
}
