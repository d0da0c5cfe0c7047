package client

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// maxSSELine bounds one line of an event stream: a publication's data line
// is as long as its data, which the server bounds (max_publication_size).
const maxSSELine = 16 << 20

// sseEvent is one dispatched Server-Sent Event.
type sseEvent struct {
	name  string // "" for unnamed events (EventSource's "message")
	data  []byte
	id    string
	hasID bool
}

// sseParser reads events from a text/event-stream body, following the
// HTML Living Standard's parsing rules: fields "event", "data" (joined with
// "\n"), "id" (ignored if it holds NUL), comments starting with ':', an
// event dispatched at each blank line, and events without data dropped.
// Lines end with "\n" or "\r\n"; a lone "\r" ends a line too, except at the
// end of the data read so far.
type sseParser struct {
	r       *bufio.Reader
	pending [][]byte
	// onLine, if set, is called for every line read, comments included:
	// the stream's liveness signal.
	onLine func()
}

func newSSEParser(r io.Reader) *sseParser {
	return &sseParser{r: bufio.NewReaderSize(r, 32<<10)}
}

var errSSELineTooLong = errors.New("client: event stream line too long")

// next returns the next event. At the end of the body it returns io.EOF
// (an event not ended by a blank line is dropped, as EventSource does).
func (p *sseParser) next() (sseEvent, error) {
	var ev sseEvent
	var data []byte
	hasData := false
	for {
		line, err := p.readLine()
		if err != nil {
			return sseEvent{}, err
		}
		if p.onLine != nil {
			p.onLine()
		}
		if len(line) == 0 {
			if !hasData {
				ev = sseEvent{}
				continue
			}
			ev.data = data[:len(data)-1] // without the last "\n"
			return ev, nil
		}
		if line[0] == ':' {
			continue
		}
		field, value, found := bytes.Cut(line, []byte{':'})
		if found && len(value) > 0 && value[0] == ' ' {
			value = value[1:]
		}
		switch string(field) {
		case "event":
			ev.name = string(value)
		case "data":
			data = append(data, value...)
			data = append(data, '\n')
			hasData = true
		case "id":
			if bytes.IndexByte(value, 0) < 0 {
				ev.id, ev.hasID = string(value), true
			}
		}
	}
}

// readLine returns the next line without its terminator. The slice is
// valid until the next call.
func (p *sseParser) readLine() ([]byte, error) {
	if len(p.pending) > 0 {
		l := p.pending[0]
		p.pending = p.pending[1:]
		return l, nil
	}
	var line []byte
	for {
		chunk, err := p.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			line = append(line, chunk...)
			if len(line) > maxSSELine {
				return nil, errSSELineTooLong
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if line == nil {
			line = chunk
		} else {
			line = append(line, chunk...)
		}
		if len(line) > maxSSELine+2 { // the limit plus "\r\n"
			return nil, errSSELineTooLong
		}
		break
	}
	line = line[:len(line)-1]
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if bytes.IndexByte(line, '\r') < 0 {
		return line, nil
	}
	parts := bytes.Split(line, []byte{'\r'})
	p.pending = parts[1:]
	return parts[0], nil
}
