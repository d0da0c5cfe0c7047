package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestDecodeCommandsBatch(t *testing.T) {
	cmds, err := DecodeCommands([]byte("{\"id\":1,\"method\":\"connect\"}\n\n{\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"a\"}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cmds) != 2 || cmds[0].Method != MethodConnect || cmds[1].ID != 2 {
		t.Fatalf("cmds = %+v", cmds)
	}
	var req SubscribeRequest
	if err := DecodeParams(&cmds[1], &req); err != nil || req.Channel != "a" {
		t.Fatalf("params = %+v, %v", req, err)
	}
}

func TestDecodeCommandsRejects(t *testing.T) {
	for _, in := range []string{"", "\n\n", "{", "[]", `{"id":1}`, `{"id":-1,"method":"x"}`, `{"method":1}`, "null",
		strings.Repeat(`{"method":"ping"}`+"\n", MaxCommandsPerFrame+1)} {
		_, err := DecodeCommands([]byte(in))
		if !errors.Is(err, ErrBadRequest) {
			t.Errorf("DecodeCommands(%.30q) = %v, want ErrBadRequest", in, err)
		}
	}
}

func TestNormalizeData(t *testing.T) {
	got, err := NormalizeData([]byte("{\n  \"a\": \"x\\ny\",\n  \"b\": [1, 2]\n}"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != `{"a":"x\ny","b":[1,2]}` {
		t.Fatalf("got %s", got)
	}
	for _, bad := range []string{"", "{", "nope", `{"a":1}{"b":2}`} {
		if _, err := NormalizeData([]byte(bad)); !errors.Is(err, ErrBadRequest) {
			t.Errorf("NormalizeData(%q) = %v, want ErrBadRequest", bad, err)
		}
	}
}

func TestAppendPublicationIsValidJSON(t *testing.T) {
	pub := &Publication{Channel: "chat:x", Offset: 7, Data: json.RawMessage(`{"t":"hi"}`), Time: 1700000000000,
		Info: &ClientInfo{Client: "c1", User: "u\"1"}, Tags: map[string]string{"k": "v\n"}}
	frame := AppendPublication(nil, pub)
	var got struct {
		Type string `json:"type"`
		Publication
	}
	if err := json.Unmarshal(frame, &got); err != nil {
		t.Fatalf("%s: %v", frame, err)
	}
	if got.Type != PushPublication || got.Channel != "chat:x" || got.Offset != 7 || string(got.Data) != `{"t":"hi"}` ||
		got.Info.User != "u\"1" || got.Tags["k"] != "v\n" || got.Time != 1700000000000 {
		t.Fatalf("decoded %+v from %s", got, frame)
	}
	if bytes.IndexByte(frame, '\n') >= 0 {
		t.Fatalf("frame holds a raw newline: %s", frame)
	}
}

func BenchmarkAppendPublication(b *testing.B) {
	pub := &Publication{Channel: "chat:lobby", Offset: 123456, Data: json.RawMessage(`{"text":"hello world","n":42}`), Time: 1700000000000}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendPublication(buf[:0], pub)
	}
}

func FuzzDecodeCommands(f *testing.F) {
	f.Add([]byte(`{"id":1,"method":"connect","params":{}}`))
	f.Add([]byte("{\"id\":2,\"method\":\"subscribe\",\"params\":{\"channel\":\"a\",\"recover\":true,\"epoch\":\"x\",\"offset\":3}}\n{\"method\":\"pong\"}"))
	f.Add([]byte(`{"id":3,"method":"publish","params":{"channel":"a","data":{"x":[1,2,{"y":null}]}}}`))
	f.Add([]byte("\x00\xff{"))
	f.Fuzz(func(t *testing.T, frame []byte) {
		cmds, err := DecodeCommands(frame)
		if err != nil {
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("error %v is not a bad request", err)
			}
			return
		}
		if len(cmds) == 0 || len(cmds) > MaxCommandsPerFrame {
			t.Fatalf("%d commands", len(cmds))
		}
		for i := range cmds {
			if cmds[i].Method == "" {
				t.Fatal("command without method accepted")
			}
			// Decoding params of any shape must fail cleanly, never panic.
			var sub SubscribeRequest
			_ = DecodeParams(&cmds[i], &sub)
			var pub PublishRequest
			if DecodeParams(&cmds[i], &pub) == nil && len(pub.Data) > 0 {
				if d, err := NormalizeData(pub.Data); err == nil && bytes.IndexByte(d, '\n') >= 0 {
					t.Fatalf("normalized data holds a newline: %q", d)
				}
			}
		}
	})
}

// Replies embed publication data, which must stay byte for byte as accepted:
// no HTML escaping of <, > and &.
func TestEncodeReplyKeepsDataUnescaped(t *testing.T) {
	data := json.RawMessage(`{"html":"<a href='x'>&amp;</a>"}`)
	frame := EncodeReply(&Reply{ID: 7, Result: HistoryResult{Publications: []Publication{{Channel: "c", Offset: 1, Data: data}}}})
	if !bytes.Contains(frame, data) {
		t.Fatalf("reply %s does not hold the data %s unchanged", frame, data)
	}
	if bytes.HasSuffix(frame, []byte("\n")) {
		t.Fatalf("reply ends in a newline: %q", frame)
	}
}
