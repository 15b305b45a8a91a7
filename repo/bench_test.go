package repo_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"simworker/app"
	"simworker/domain"
	"simworker/repo"
	"simworker/repo/repotest"
)

// BenchmarkHandle decides valid Create-SIM commands against PostgreSQL, one
// transaction per batch, and reports commands per second.
func BenchmarkHandle(b *testing.B) {
	for _, size := range []int{1, 100, 500} {
		b.Run(fmt.Sprintf("batch=%d", size), func(b *testing.B) {
			pool, _ := repotest.NewDB(b)
			repotest.LoadDemo(b, pool)
			store := app.New(repo.New(pool), "")
			ctx := context.Background()
			n := 0
			start := time.Now()
			for b.Loop() {
				envs := make([]domain.Envelope, size)
				for i := range envs {
					envs[i] = domain.ParseCommand([]byte(fmt.Sprintf(
						`{"command_id":"b-%d","actor_id":"u-alice","sim":{"device_id":"d-1","iccid":"8944%015d"}}`, n, n)))
					n++
				}
				if _, err := store.Handle(ctx, envs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/time.Since(start).Seconds(), "commands/s")
		})
	}
}
