package api

import (
	"context"
	"fmt"
	"sync"
	"time"

	"simworker/app"
	"simworker/domain"
)

const (
	// recordWriters is how many batches of records are written at once.
	recordWriters = 4
	// maxRecordBatch bounds the requests recorded in one statement.
	maxRecordBatch = 256
	// recordTimeout bounds the writing of one batch.
	recordTimeout = 5 * time.Second
)

// recorder records the commands the API makes in batches, as the worker
// decides them: a writer takes the requests waiting when it is free, never
// waiting to fill a batch, so a lone request is written at once and a burst
// costs one statement and one commit per batch instead of one per request.
type recorder struct {
	app  *app.App
	reqs chan *recordReq
	stop chan struct{}
	wg   sync.WaitGroup
}

type recordReq struct {
	app.CommandRequest
	done chan recordRes // buffered: a writer never blocks on a request that left
}

type recordRes struct {
	app.Recorded
	err error
}

func newRecorder(a *app.App) *recorder {
	r := &recorder{app: a, reqs: make(chan *recordReq), stop: make(chan struct{})}
	for range recordWriters {
		r.wg.Add(1)
		go r.write()
	}
	return r
}

// record records one request and returns the command that answers it (see
// app.RecordCommands).
func (r *recorder) record(ctx context.Context, q app.CommandRequest) (app.Recorded, error) {
	req := &recordReq{CommandRequest: q, done: make(chan recordRes, 1)}
	select {
	case r.reqs <- req:
	case <-ctx.Done():
		return app.Recorded{}, ctx.Err()
	case <-r.stop:
		return app.Recorded{}, fmt.Errorf("%w: the API is stopping", domain.ErrUnavailable)
	}
	select {
	case res := <-req.done:
		return res.Recorded, res.err
	case <-ctx.Done():
		return app.Recorded{}, ctx.Err()
	}
}

// write takes a first request, then what is already waiting, and records
// them in one statement, until the recorder closes.
func (r *recorder) write() {
	defer r.wg.Done()
	for {
		var batch []*recordReq
		select {
		case q := <-r.reqs:
			batch = append(batch, q)
		case <-r.stop:
			return
		}
	fill:
		for len(batch) < maxRecordBatch {
			select {
			case q := <-r.reqs:
				batch = append(batch, q)
			default:
				break fill
			}
		}
		qs := make([]app.CommandRequest, len(batch))
		for i, q := range batch {
			qs[i] = q.CommandRequest
		}
		ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
		res, err := r.app.RecordCommands(ctx, qs)
		cancel()
		for i, q := range batch {
			if err != nil {
				q.done <- recordRes{err: err}
			} else {
				q.done <- recordRes{Recorded: res[i]}
			}
		}
	}
}

// close stops the writers after the batches they are writing.
func (r *recorder) close() {
	close(r.stop)
	r.wg.Wait()
}
