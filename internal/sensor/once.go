package sensor

import (
	"context"
	"fmt"
	"sync"
)

// Once is the life of a live sensor: Run may be called once, Close stops a
// running Run and waits for it to return before the sensor lets go of its
// sockets and files, and only the first Close does that. The zero value is
// ready to use.
type Once struct {
	mu       sync.Mutex
	running  bool
	closed   bool
	cancel   context.CancelFunc
	finished chan struct{}
}

// Start begins a Run: it returns the context Run must stop on (ctx, or
// Close) and the function Run defers. name is for the error when Run is
// called twice or after Close.
func (o *Once) Start(ctx context.Context, name string) (context.Context, func(), error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.running || o.closed {
		return nil, nil, fmt.Errorf("%s: Run called twice or after Close", name)
	}
	ctx, cancel := context.WithCancel(ctx)
	finished := make(chan struct{})
	o.running, o.cancel, o.finished = true, cancel, finished
	return ctx, func() { cancel(); close(finished) }, nil
}

// Stop marks the sensor closed, stops Run if it runs and waits until it has
// returned. It reports whether this was the first Stop: the sensor's Close
// releases what it holds only then.
func (o *Once) Stop() (first bool) {
	o.mu.Lock()
	first = !o.closed
	o.closed = true
	cancel, finished := o.cancel, o.finished
	o.mu.Unlock()
	if cancel != nil {
		cancel()
		<-finished
	}
	return first
}
