package api

import (
	"sync"

	"github.com/nats-io/nats.go"

	"simworker/client"
	"simworker/domain"
)

// waiter holds the process's one subscription to the outcome events and
// hands each event to the requests waiting for its command. An event that
// no request waits for is dropped: the outcome is stored in PostgreSQL, and
// a request that missed its event (a reconnect, a slow subscriber) reads it
// there when its wait ends.
type waiter struct {
	nc  *nats.Conn
	sub *nats.Subscription

	mu      sync.Mutex
	waiting map[string][]chan client.Event
}

func newWaiter(nc *nats.Conn) (*waiter, error) {
	w := &waiter{nc: nc, waiting: map[string][]chan client.Event{}}
	sub, err := nc.Subscribe(client.EventsSubject, w.deliver)
	if err != nil {
		return nil, err
	}
	// Events come at the worker's pace; dropping them is what the fallback
	// to PostgreSQL covers, not something to trade memory for.
	if err := sub.SetPendingLimits(1<<16, 64<<20); err != nil {
		_ = sub.Unsubscribe()
		return nil, err
	}
	w.sub = sub
	return w, nil
}

// deliver reads only the command id: most events are for no one here (every
// outcome of the system passes through every API process).
func (w *waiter) deliver(m *nats.Msg) {
	id := domain.EventCommandID(m.Data)
	if id == "" {
		return
	}
	w.mu.Lock()
	chans := w.waiting[id]
	delete(w.waiting, id)
	w.mu.Unlock()
	if len(chans) == 0 {
		return
	}
	ev, err := client.ParseEvent(m.Data)
	if err != nil {
		return
	}
	for _, ch := range chans {
		ch <- ev // buffered, one event each
	}
}

// wait registers for commandID's outcome; cancel unregisters. Register
// before publishing, or the event can come first.
func (w *waiter) wait(commandID string) (<-chan client.Event, func()) {
	ch := make(chan client.Event, 1)
	w.mu.Lock()
	w.waiting[commandID] = append(w.waiting[commandID], ch)
	w.mu.Unlock()
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		chans := w.waiting[commandID]
		for i, c := range chans {
			if c == ch {
				chans = append(chans[:i], chans[i+1:]...)
				break
			}
		}
		if len(chans) == 0 {
			delete(w.waiting, commandID)
		} else {
			w.waiting[commandID] = chans
		}
	}
}

// live reports whether the subscription receives events.
func (w *waiter) live() bool { return w.sub.IsValid() && w.nc.IsConnected() }

func (w *waiter) close() { _ = w.sub.Unsubscribe() }
