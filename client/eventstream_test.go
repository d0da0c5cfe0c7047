package client

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func TestSSEParser(t *testing.T) {
	in := "retry: 10\n\n" +
		": comment\n" +
		"event: subscribed\nid: a-1\ndata: {\"x\":1}\n\n" +
		"data: line one\ndata:line two\r\n\r\n" +
		"id: a-2\rdata: cr only\r\r" +
		"id: with\x00nul\ndata: x\n\n" +
		"event: nodata\n\n" +
		"data\n\n" +
		"data: unfinished"
	p := newSSEParser(strings.NewReader(in))
	var lines int
	p.onLine = func() { lines++ }
	want := []sseEvent{
		{name: "subscribed", id: "a-1", hasID: true, data: []byte(`{"x":1}`)},
		{data: []byte("line one\nline two")},
		{id: "a-2", hasID: true, data: []byte("cr only")},
		{data: []byte("x")},
		{data: []byte("")},
	}
	for i, w := range want {
		ev, err := p.next()
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		if ev.name != w.name || ev.id != w.id || ev.hasID != w.hasID || string(ev.data) != string(w.data) {
			t.Fatalf("event %d: %+v, want %+v", i, ev, w)
		}
	}
	if _, err := p.next(); !errors.Is(err, io.EOF) {
		t.Fatalf("end: %v", err)
	}
	if lines < 10 {
		t.Fatalf("onLine called %d times", lines)
	}
}

func TestSSEParserLongLines(t *testing.T) {
	long := strings.Repeat("x", 100<<10)
	p := newSSEParser(strings.NewReader("data: " + long + "\n\n"))
	ev, err := p.next()
	if err != nil || string(ev.data) != long {
		t.Fatalf("long line: %d bytes, %v", len(ev.data), err)
	}
	p = newSSEParser(strings.NewReader("data: " + strings.Repeat("x", maxSSELine+1) + "\n\n"))
	if _, err := p.next(); !errors.Is(err, errSSELineTooLong) {
		t.Fatalf("oversize line: %v", err)
	}
}

func FuzzSSEParser(f *testing.F) {
	f.Add("event: a\nid: b\ndata: c\n\n")
	f.Add("data: x\r\ndata: y\r\r\n")
	f.Fuzz(func(t *testing.T, in string) {
		p := newSSEParser(strings.NewReader(in))
		for range len(in) + 1 {
			ev, err := p.next()
			if err != nil {
				return
			}
			if strings.ContainsAny(ev.name, "\r\n") || strings.ContainsAny(ev.id, "\r\n\x00") {
				t.Fatalf("field with a line break or NUL: %+v", ev)
			}
		}
		t.Fatal("more events than input bytes")
	})
}
