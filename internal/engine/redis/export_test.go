package redis

// NewClassicPubSub is New for an engine that uses classic pub/sub (PUBLISH
// and SUBSCRIBE) even on Redis 7, as it does on Redis 6.
func NewClassicPubSub(cfg Config) (*Engine, error) {
	e, err := New(cfg)
	if e != nil {
		e.classicPubSub = true
	}
	return e, err
}
