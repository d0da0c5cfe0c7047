package node

// ItemKind tells a transport how to write an outbound item.
type ItemKind uint8

const (
	// ItemFrame is a reply or a push other than a publication.
	ItemFrame ItemKind = iota
	// ItemPublication is a publication push; Channel, Epoch and Offset say
	// which stream position it advances to.
	ItemPublication
	// ItemSubscribed marks a completed subscription on a transport without
	// replies (SSE); Channel, Epoch and Offset are the position the stream
	// starts from, and Frame is the encoded SubscribedPush.
	ItemSubscribed
)

// Item is one outbound frame in a session's queue. Frame bytes may be shared
// with other sessions and must not be modified.
type Item struct {
	Kind ItemKind
	// Latest marks a publication of a protocol.DeliveryLatest
	// subscription: a transport with an unreliable path may send it there,
	// and skip it when a newer one of its channel is waiting. Beside Kind,
	// it takes no room of its own.
	Latest bool
	// Push names the push type ("" for replies); SSE uses it as the event name.
	Push    string
	Channel string
	Epoch   string
	Offset  uint64
	Frame   []byte
}

// outbox is a session's bounded FIFO of outbound items. It is a ring buffer
// that grows on demand up to the byte limit and is released when drained, so
// an idle session holds no queue memory. Callers hold the session lock.
type outbox struct {
	items    []Item
	head     int
	n        int
	bytes    int
	maxBytes int
}

// push appends it, reporting false when the byte limit would be exceeded.
func (q *outbox) push(it Item) bool {
	size := len(it.Frame) + len(it.Channel) + len(it.Epoch)
	if q.bytes+size > q.maxBytes && q.n > 0 {
		return false
	}
	if q.n == len(q.items) {
		q.grow()
	}
	q.items[(q.head+q.n)%len(q.items)] = it
	q.n++
	q.bytes += size
	return true
}

func (q *outbox) grow() {
	size := 2 * len(q.items)
	if size == 0 {
		// Most sessions have one or two frames queued at a time (a reply, a
		// ping, a publication); bursts grow the ring, and only they pay.
		size = 2
	}
	items := make([]Item, size)
	for i := 0; i < q.n; i++ {
		items[i] = q.items[(q.head+i)%len(q.items)]
	}
	q.items, q.head = items, 0
}

// drainTo appends every queued item to dst and empties the queue.
func (q *outbox) drainTo(dst []Item) []Item {
	for i := 0; i < q.n; i++ {
		j := (q.head + i) % len(q.items)
		dst = append(dst, q.items[j])
		q.items[j] = Item{}
	}
	q.head, q.n, q.bytes = 0, 0, 0
	// Keep a small ring for the next burst; release a big one so a session
	// that once had a backlog does not hold its memory while idle.
	if len(q.items) > 64 {
		q.items = nil
	}
	return dst
}

// reset discards every queued item and releases the ring.
func (q *outbox) reset() {
	q.items, q.head, q.n, q.bytes = nil, 0, 0, 0
}

func (q *outbox) len() int { return q.n }
