// Command simbench measures the worker against the limits of the machine, in
// one run, and prints a table: raw JetStream and raw PostgreSQL on the same
// data, a naive one-command-per-transaction baseline, the worker end to end,
// latency at fixed offered rates, peak RSS, and growth with a large table.
//
// It starts its own infrastructure like `simworker dev` (PostgreSQL with its
// defaults: fsync and synchronous_commit on; nats-server with JetStream file
// storage and its default sync interval), and the worker as a real
// `simworker run` process.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/domain"
	"simworker/internal/devstack"
	"simworker/repo"
)

type options struct {
	commands    int
	naive       int
	rates       []int
	latencyFor  time.Duration
	growth      int
	queued      int
	workerBin   string
	batchSize   int
	concurrency int
	out         string
	cpuProfile  string
}

func main() {
	var o options
	var rates string
	flag.IntVar(&o.commands, "commands", 200000, "commands for the end-to-end throughput run")
	flag.IntVar(&o.naive, "naive", 5000, "commands for the naive baseline (one transaction and one synchronous publish each)")
	flag.StringVar(&rates, "rates", "1000,10000", "offered rates (commands/s) for the latency runs")
	flag.DurationVar(&o.latencyFor, "latency-duration", 10*time.Second, "how long each latency run offers its rate")
	flag.IntVar(&o.growth, "growth", 0, "SIMs stored before a second throughput run (e.g. 5000000); 0 skips it")
	flag.IntVar(&o.queued, "queued", 0, "commands queued before the worker starts, for its peak RSS (e.g. 1000000); 0 skips it")
	flag.StringVar(&o.workerBin, "worker", "", "the simworker binary (default: built from ./cmd/simworker)")
	flag.IntVar(&o.batchSize, "batch-size", 500, "the worker's SIM_BATCH_SIZE")
	flag.IntVar(&o.concurrency, "concurrency", 2, "the worker's SIM_CONCURRENCY")
	flag.StringVar(&o.out, "out", "", "also write the table (Markdown) to this file")
	flag.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile of the worker during the throughput run here")
	quick := flag.Bool("quick", false, "a run of under a minute: 20,000 commands, 2 s per rate, 1,000 naive")
	flag.Parse()
	for _, r := range strings.Split(rates, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(r))
		if err != nil || n <= 0 {
			fmt.Fprintf(os.Stderr, "simbench: -rates: %q is not a positive rate\n", r)
			os.Exit(2)
		}
		o.rates = append(o.rates, n)
	}
	if *quick { // only what the command line did not set
		set := map[string]bool{}
		flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
		if !set["commands"] {
			o.commands = 20000
		}
		if !set["naive"] {
			o.naive = 1000
		}
		if !set["latency-duration"] {
			o.latencyFor = 2 * time.Second
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "simbench:", err)
		os.Exit(1)
	}
}

// bench is the infrastructure of a run.
type bench struct {
	o         options
	serverURL string // PostgreSQL server (maintenance database)
	natsURL   string
	nc        *nats.Conn
	js        jetstream.JetStream
	rows      []string
	dbs       int
	pgPID     int  // the PostgreSQL cluster this program started, 0 for DATABASE_URL
	ownNATS   bool // the nats-server runs in this process
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "simbench: "+format+"\n", args...)
}

func (b *bench) result(name, value, note string) {
	b.rows = append(b.rows, fmt.Sprintf("| %s | %s | %s |", name, value, note))
	b.logf("%s: %s %s", name, value, note)
}

func run(ctx context.Context, o options) error {
	b := &bench{o: o}
	if o.workerBin == "" {
		dir, err := os.MkdirTemp("", "simbench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		o.workerBin = filepath.Join(dir, "simworker")
		b.logf("building simworker")
		if out, err := exec.Command("go", "build", "-o", o.workerBin, "./cmd/simworker").CombinedOutput(); err != nil {
			return fmt.Errorf("build simworker: %v: %s", err, out)
		}
		b.o.workerBin = o.workerBin
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		b.serverURL = u
	} else {
		b.logf("starting PostgreSQL (defaults: fsync on, synchronous_commit on)")
		pg, err := devstack.StartPostgres(ctx, devstack.PostgresOptions{})
		if err != nil {
			return err
		}
		defer pg.Stop()
		b.serverURL, b.pgPID = pg.URL, pg.PID()
	}
	if u := os.Getenv("NATS_URL"); u != "" {
		b.natsURL = u
	} else {
		ns, err := devstack.StartNATS(devstack.NATSOptions{})
		if err != nil {
			return err
		}
		defer ns.Shutdown()
		b.natsURL, b.ownNATS = ns.URL, true
	}
	var err error
	if b.nc, err = nats.Connect(b.natsURL); err != nil {
		return err
	}
	defer b.nc.Close()
	if b.js, err = jetstream.New(b.nc, jetstream.WithPublishAsyncMaxPending(4000)); err != nil {
		return err
	}

	b.logf("generating %d commands", o.commands)
	cmds := generate(o.commands, 0)
	size := 0
	for _, c := range cmds {
		size += len(c.body)
	}
	b.rows = append(b.rows, "| measure | result | notes |", "| --- | --- | --- |")
	b.result("machine", fmt.Sprintf("%d cores", runtime.NumCPU()), fmt.Sprintf("%s/%s, %s; mean command %d bytes", runtime.GOOS, runtime.GOARCH, runtime.Version(), size/len(cmds)))

	jsPub, jsCons, err := b.rawJetStream(ctx, cmds)
	if err != nil {
		return err
	}
	b.result("limit: JetStream async publish", rate(jsPub), "same messages, file storage")
	b.result("limit: JetStream pull consume + ack", rate(jsCons), "batches of 500")
	pgRaw, err := b.rawPostgres(ctx, cmds)
	if err != nil {
		return err
	}
	b.result("limit: PostgreSQL batched insert", rate(pgRaw), "a SIM row + a processed-command row each, 500 per transaction, 4 connections")

	naive, err := b.naive(ctx, cmds[:min(o.naive, len(cmds))])
	if err != nil {
		return err
	}
	b.result("naive baseline", rate(naive), fmt.Sprintf("one transaction + one synchronous publish + ack per command, %d commands", min(o.naive, len(cmds))))

	w, rss, cpu, err := b.throughput(ctx, cmds, 0, o.cpuProfile)
	if err != nil {
		return err
	}
	b.result("worker end to end", rate(w), fmt.Sprintf("%d commands (90%% valid), first publish to last outcome; batch %d, concurrency %d", len(cmds), o.batchSize, o.concurrency))
	b.result("CPU per command", cpu.perCommand(len(cmds), b.pgPID != 0, b.ownNATS), "CPU time over the throughput run divided by its commands")
	if b.pgPID != 0 && b.ownNATS {
		// Everything runs on this machine's cores: their CPU time per command
		// bounds the rate, and the worker's share is all this project owns.
		per := func(d time.Duration) float64 { return d.Seconds() / float64(len(cmds)) }
		cores := float64(runtime.NumCPU())
		all := per(cpu.worker) + per(cpu.postgres) + per(cpu.bench)
		b.result("CPU ceiling", fmt.Sprintf("%.0f/s", cores/all),
			fmt.Sprintf("%d cores / CPU per command; %.0f/s if the worker cost nothing (PostgreSQL and JetStream alone)",
				runtime.NumCPU(), cores/(per(cpu.postgres)+per(cpu.bench))))
	}
	b.result("worker peak RSS", fmt.Sprintf("%.0f MB", float64(rss)/1e6), "during the throughput run")
	b.result("worker / JetStream limit", fmt.Sprintf("%.2f", w/min(jsPub, jsCons)), "")
	b.result("worker / PostgreSQL limit", fmt.Sprintf("%.2f", w/pgRaw), "")
	b.result("worker / naive", fmt.Sprintf("%.1fx", w/naive), "")

	for _, r := range o.rates {
		lat, err := b.latency(ctx, r, o.latencyFor)
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("latency at %d/s offered", r), fmt.Sprintf("p50 %s, p99 %s, max %s", ms(lat.p50), ms(lat.p99), ms(lat.max)),
			fmt.Sprintf("%d commands over %s, publish to outcome; achieved %.0f/s", lat.n, o.latencyFor, lat.achieved))
	}
	if o.growth > 0 {
		g, _, _, err := b.throughput(ctx, cmds, o.growth, "")
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("worker with %d SIMs stored", o.growth), rate(g), fmt.Sprintf("%.0f%% of the empty-table run", 100*g/w))
	}
	deep, _, _, err := b.throughput(ctx, generate(min(len(cmds), 50000), 8), 0, "")
	if err != nil {
		return err
	}
	b.result("worker, company tree depth 8, grants at the root", rate(deep), fmt.Sprintf("%.0f%% of the 3-level run", 100*deep/w))
	if o.queued > 0 {
		rss, err := b.queuedRSS(ctx, o.queued)
		if err != nil {
			return err
		}
		b.result(fmt.Sprintf("worker peak RSS, %d commands queued", o.queued), fmt.Sprintf("%.0f MB", float64(rss)/1e6), "")
	}
	table := strings.Join(b.rows, "\n") + "\n"
	fmt.Print(table)
	if o.out != "" {
		return os.WriteFile(o.out, []byte(table), 0o644)
	}
	return nil
}

func rate(r float64) string { return fmt.Sprintf("%.0f/s", r) }

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

// command is a generated command.
type command struct {
	id   string
	body []byte
}

// generate makes n commands: 90% valid, 10% spread over every rejection
// code, some ICCIDs wanted twice. depth 8 puts every device at the bottom of
// an eight-level company tree.
func generate(n, depth int) []command {
	out := make([]command, n)
	prefix := "b"
	if depth > 0 {
		prefix = fmt.Sprintf("deep%d", depth)
	}
	for i := range out {
		id := fmt.Sprintf("%s-%08d", prefix, i)
		device := fmt.Sprintf("d-%d", i%20000)
		actor := fmt.Sprintf("u-%d", (i%20000)/10) // user u-k holds the grant of device d-(10k..10k+9)'s reseller
		if depth > 0 {
			device, actor = fmt.Sprintf("deep-d-%d", i%1000), "u-deep"
		}
		sim := map[string]any{"device_id": device, "iccid": fmt.Sprintf("89%02d%015d", depth, i),
			"msisdn": fmt.Sprintf("49151%08d", i), "status": "active", "rate_plan": "Flex 1GB", "communication_plan": "IoT EU",
			"sim_metadata": json.RawMessage(`{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}`)}
		switch i % 100 {
		case 90, 91:
			sim["iccid"] = "123" // 400 invalid_argument
		case 92:
			actor = "" // 401 no actor
		case 93:
			sim["device_id"] = "d-missing" // 404 device
		case 94, 95:
			actor = "u-nobody" // 401 no permission
		case 96:
			sim["mno_integration_id"] = "m-missing" // 404 MNO
		case 97, 98, 99:
			if i >= 100 { // 400 already_exists: the ICCID of a valid command just before
				sim["iccid"] = fmt.Sprintf("89%02d%015d", depth, i-10)
			}
		}
		body, _ := json.Marshal(map[string]any{"command_id": id, "actor_id": actor, "sim": sim})
		out[i] = command{id: id, body: body}
	}
	return out
}

// fixtures: 1,000 companies in a three-level tree (10 resellers, 90
// customers, 900 sites), 20,000 devices on the sites, 2,000 users with a
// grant each, MNO integrations; and an eight-level chain for the depth run.
func fixtures() *repo.Fixtures {
	var f repo.Fixtures
	addCompany := func(id string, parent *string) {
		f.Companies = append(f.Companies, struct {
			ID       string  `json:"id"`
			Name     string  `json:"name"`
			ParentID *string `json:"parent_id"`
		}{ID: id, Name: id, ParentID: parent})
	}
	site := func(k int) string { return fmt.Sprintf("co-site-%d", k) }
	for r := 0; r < 10; r++ {
		rid := fmt.Sprintf("co-reseller-%d", r)
		addCompany(rid, nil)
		for c := 0; c < 9; c++ {
			cid := fmt.Sprintf("co-customer-%d", r*9+c)
			addCompany(cid, &rid)
			for s := 0; s < 10; s++ {
				addCompany(site((r*9+c)*10+s), &cid)
			}
		}
	}
	for d := 0; d < 20000; d++ {
		f.Devices = append(f.Devices, struct {
			ID        string `json:"id"`
			CompanyID string `json:"company_id"`
			Name      string `json:"name"`
		}{ID: fmt.Sprintf("d-%d", d), CompanyID: site(d / 10 % 900), Name: "device"})
	}
	// User u-k (k < 2000) holds the grant on the customer above device
	// d-(10k)'s site: generate() pairs them.
	for u := 0; u < 2000; u++ {
		f.Users = append(f.Users, struct {
			ID   string `json:"id"`
			Name string `json:"name"`
		}{ID: fmt.Sprintf("u-%d", u), Name: "user"})
		customer := fmt.Sprintf("co-customer-%d", (u*10/10%900)/10)
		f.Grants = append(f.Grants, struct {
			UserID     string `json:"user_id"`
			CompanyID  string `json:"company_id"`
			Permission string `json:"permission"`
		}{UserID: fmt.Sprintf("u-%d", u), CompanyID: customer, Permission: domain.PermissionCreateSIM})
	}
	f.Users = append(f.Users, struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}{ID: "u-nobody", Name: "no grants"}, struct {
		ID   string `json:"id"`
		Name string `json:"name"`
	}{ID: "u-deep", Name: "deep"})
	// The depth run: deep-1 > deep-2 > ... > deep-8, devices on deep-8, the
	// grant on deep-1, and many grants of other users on the way.
	prev := (*string)(nil)
	for lvl := 1; lvl <= 8; lvl++ {
		id := fmt.Sprintf("co-deep-%d", lvl)
		addCompany(id, prev)
		p := id
		prev = &p
	}
	for d := 0; d < 1000; d++ {
		f.Devices = append(f.Devices, struct {
			ID        string `json:"id"`
			CompanyID string `json:"company_id"`
			Name      string `json:"name"`
		}{ID: fmt.Sprintf("deep-d-%d", d), CompanyID: "co-deep-8", Name: "device"})
	}
	f.Grants = append(f.Grants, struct {
		UserID     string `json:"user_id"`
		CompanyID  string `json:"company_id"`
		Permission string `json:"permission"`
	}{UserID: "u-deep", CompanyID: "co-deep-1", Permission: domain.PermissionCreateSIM})
	for u := 0; u < 2000; u++ {
		for lvl := 2; lvl <= 8; lvl += 3 {
			f.Grants = append(f.Grants, struct {
				UserID     string `json:"user_id"`
				CompanyID  string `json:"company_id"`
				Permission string `json:"permission"`
			}{UserID: fmt.Sprintf("u-%d", u), CompanyID: fmt.Sprintf("co-deep-%d", lvl), Permission: "sims:read"})
		}
	}
	f.MNOIntegrations = append(f.MNOIntegrations, struct {
		ID        string `json:"id"`
		CompanyID string `json:"company_id"`
		Name      string `json:"name"`
	}{ID: "m-1", CompanyID: "co-reseller-0", Name: "CMP"})
	return &f
}

// newDatabase creates a migrated database with the fixtures.
func (b *bench) newDatabase(ctx context.Context) (string, *pgxpool.Pool, error) {
	b.dbs++
	name := fmt.Sprintf("simbench_%d_%d", os.Getpid(), b.dbs)
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err != nil {
		return "", nil, err
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return "", nil, err
	}
	u, err := url.Parse(b.serverURL)
	if err != nil {
		return "", nil, err
	}
	u.Path = "/" + name
	pool, err := repo.Open(ctx, u.String())
	if err != nil {
		return "", nil, err
	}
	if err := repo.Migrate(ctx, pool); err != nil {
		return "", nil, err
	}
	if _, err := repo.LoadFixtures(ctx, pool, fixtures()); err != nil {
		return "", nil, err
	}
	return u.String(), pool, nil
}

// checkpoint asks PostgreSQL to write out the dirty pages of earlier runs
// first, so a measured run does not pay for its predecessor's writes (its
// commit fsyncs would queue behind the checkpoint's). Without the privilege
// (DATABASE_URL of a plain user) the run goes on without it.
func (b *bench) checkpoint(ctx context.Context) {
	conn, err := pgx.Connect(ctx, b.serverURL)
	if err == nil {
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CHECKPOINT")
	}
	if err != nil {
		b.logf("CHECKPOINT before the run failed (%v): the run may pay for earlier writes", err)
	}
}

// freshStreams deletes and recreates the worker's streams and consumer.
func (b *bench) freshStreams(ctx context.Context) error {
	for _, s := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
		_ = b.js.DeleteStream(ctx, s)
	}
	_, err := consumer.Setup(ctx, b.js, consumer.StreamConfig{})
	return err
}

// rawJetStream publishes the commands to a scratch stream asynchronously,
// then consumes and acks them in batches.
func (b *bench) rawJetStream(ctx context.Context, cmds []command) (float64, float64, error) {
	b.logf("raw JetStream")
	_ = b.js.DeleteStream(ctx, "BENCH_RAW")
	s, err := b.js.CreateStream(ctx, jetstream.StreamConfig{Name: "BENCH_RAW", Subjects: []string{"bench.raw"}, Storage: jetstream.FileStorage})
	if err != nil {
		return 0, 0, err
	}
	defer b.js.DeleteStream(ctx, "BENCH_RAW")
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.js.PublishAsync("bench.raw", c.body, jetstream.WithMsgID(c.id)); err != nil {
			return 0, 0, err
		}
	}
	select {
	case <-b.js.PublishAsyncComplete():
	case <-time.After(5 * time.Minute):
		return 0, 0, fmt.Errorf("raw publish did not complete")
	}
	pub := float64(len(cmds)) / time.Since(start).Seconds()
	cons, err := s.CreateConsumer(ctx, jetstream.ConsumerConfig{Durable: "raw", AckPolicy: jetstream.AckExplicitPolicy, MaxAckPending: 20000})
	if err != nil {
		return 0, 0, err
	}
	start = time.Now()
	got := 0
	for got < len(cmds) {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return 0, 0, err
		}
		for m := range batch.Messages() {
			_ = m.Ack()
			got++
		}
		if batch.Error() != nil {
			return 0, 0, batch.Error()
		}
	}
	return pub, float64(len(cmds)) / time.Since(start).Seconds(), nil
}

// rawPostgres inserts, for each command, a SIM row and a processed-command
// row of the same shape the worker writes, 500 per transaction over 4
// connections: what PostgreSQL alone can take.
func (b *bench) rawPostgres(ctx context.Context, cmds []command) (float64, error) {
	b.logf("raw PostgreSQL")
	_, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	event := make([]byte, 900)
	for i := range event {
		event[i] = 'x'
	}
	var next atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				lo := int(next.Add(500)) - 500
				if lo >= len(cmds) {
					return
				}
				hi := min(lo+500, len(cmds))
				n := hi - lo
				ids, iccids, cids := make([]string, n), make([]string, n), make([]string, n)
				evs := make([][]byte, n)
				for k := 0; k < n; k++ {
					ids[k], iccids[k], cids[k], evs[k] = newUUID(), fmt.Sprintf("99%017d", lo+k), cmds[lo+k].id, event
				}
				err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
					if _, err := tx.Exec(ctx, `
						INSERT INTO sims (id, company_id, device_id, iccid, msisdn, status, rate_plan, communication_plan, sim_metadata,
						                  created_at, created_by, updated_at, updated_by)
						SELECT id, 'co-site-1', 'd-1', iccid, '4915100000000', 'active', 'Flex 1GB', 'IoT EU',
						       '{"batch":"2026-11","order":12345678901234567890,"tags":["bulk","eu"]}'::jsonb, now(), 'u-1', now(), 'u-1'
						FROM unnest($1::uuid[], $2::text[]) AS t(id, iccid)
						ON CONFLICT ON CONSTRAINT sims_iccid_key DO NOTHING`, ids, iccids); err != nil {
						return err
					}
					_, err := tx.Exec(ctx, `
						INSERT INTO processed_commands (command_id, event_id, event_type, status, sim_id, event)
						SELECT cid, gen_random_uuid(), 'sim.created', 201, id, ev FROM unnest($1::text[], $2::uuid[], $3::bytea[]) AS t(cid, id, ev)
						ON CONFLICT DO NOTHING`, cids, ids, evs)
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return 0, err
	}
	return float64(len(cmds)) / time.Since(start).Seconds(), nil
}

// naive decides one command per transaction and publishes its outcome
// synchronously before acknowledging: the design the worker improves on.
func (b *bench) naive(ctx context.Context, cmds []command) (float64, error) {
	b.logf("naive baseline over %d commands", len(cmds))
	_, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return 0, err
	}
	store := repo.NewStore(pool, "")
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return 0, err
		}
	}
	<-b.js.PublishAsyncComplete()
	cons, err := b.js.Consumer(ctx, client.CommandsStream, consumer.DurableName)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	for done := 0; done < len(cmds); {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			return 0, err
		}
		env := domain.ParseCommand(m.Data())
		var o domain.Outcome
		if env.CommandID == "" {
			o = domain.NewRejected("simworker", newUUID(), "", time.Now(), env.Reject)
		} else {
			outs, err := store.HandleSequential(ctx, []domain.Envelope{env})
			if err != nil {
				return 0, err
			}
			o = outs[0]
		}
		if _, err := b.js.Publish(ctx, o.PublishSubject(), o.Event, jetstream.WithMsgID(o.EventID)); err != nil {
			return 0, err
		}
		if err := m.Ack(); err != nil {
			return 0, err
		}
		done++
	}
	return float64(len(cmds)) / time.Since(start).Seconds(), nil
}

// worker runs `simworker run` against dbURL and returns it with a function
// that stops it and reports its peak RSS.
func (b *bench) worker(dbURL, cpuProfile string) (func() (int64, error), int, error) {
	cmd := exec.Command(b.o.workerBin, "run")
	cmd.Env = append(os.Environ(), "NATS_URL="+b.natsURL, "DATABASE_URL="+dbURL, "SIM_LOG_LEVEL=warn", "SIM_HTTP_ADDR=127.0.0.1:0",
		"SIM_BATCH_SIZE="+strconv.Itoa(b.o.batchSize), "SIM_CONCURRENCY="+strconv.Itoa(b.o.concurrency))
	if cpuProfile != "" {
		cmd.Env = append(cmd.Env, "SIM_CPU_PROFILE="+cpuProfile)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, 0, err
	}
	return func() (int64, error) {
		rss := peakRSS(cmd.Process.Pid)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		err := cmd.Wait()
		return rss, err
	}, cmd.Process.Pid, nil
}

// peakRSS reads VmHWM (peak resident set) of a process, in bytes.
func peakRSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// waitReady waits until the worker pulls from the consumer.
func (b *bench) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		c, err := b.js.Consumer(ctx, client.CommandsStream, consumer.DurableName)
		if err == nil && c.CachedInfo().NumWaiting > 0 {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
	return fmt.Errorf("the worker never pulled")
}

// waitEvents waits until SIM_EVENTS holds n events.
func (b *bench) waitEvents(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		s, err := b.js.Stream(ctx, client.EventsStream)
		if err == nil && int(s.CachedInfo().State.Msgs) >= n {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("fewer than %d outcomes within %s", n, limit)
}

// throughput publishes the commands while the worker runs and measures from
// the first publish to the last outcome. preload SIMs are stored first.
func (b *bench) throughput(ctx context.Context, cmds []command, preload int, cpuProfile string) (float64, int64, cpuUse, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	defer pool.Close()
	if preload > 0 {
		b.logf("storing %d SIMs first", preload)
		if _, err := pool.Exec(ctx, `
			INSERT INTO sims (id, company_id, device_id, iccid, status, sim_metadata, created_at, created_by, updated_at, updated_by)
			SELECT gen_random_uuid(), 'co-site-1', 'd-1', '77' || lpad(g::text, 17, '0'), 'active', '{}', now(), 'u-1', now(), 'u-1'
			FROM generate_series(1, $1) g`, preload); err != nil {
			return 0, 0, cpuUse{}, err
		}
		if _, err := pool.Exec(ctx, `
			INSERT INTO processed_commands (command_id, event_id, event_type, status, event)
			SELECT 'pre-' || g, gen_random_uuid(), 'sim.created', 201, '\x00'::bytea FROM generate_series(1, $1) g`, preload); err != nil {
			return 0, 0, cpuUse{}, err
		}
		for _, table := range []string{"sims", "processed_commands"} {
			if _, err := pool.Exec(ctx, "VACUUM ANALYZE "+table); err != nil { // one statement: VACUUM refuses a transaction
				return 0, 0, cpuUse{}, err
			}
		}
	}
	if err := b.freshStreams(ctx); err != nil {
		return 0, 0, cpuUse{}, err
	}
	b.checkpoint(ctx)
	stop, pid, err := b.worker(dbURL, cpuProfile)
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	if err := b.waitReady(ctx); err != nil {
		_, _ = stop()
		return 0, 0, cpuUse{}, err
	}
	b.logf("throughput: %d commands", len(cmds))
	meter := cpuMeter{workerPID: pid, pgPID: b.pgPID}
	before := meter.snapshot()
	start := time.Now()
	for _, c := range cmds {
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			_, _ = stop()
			return 0, 0, cpuUse{}, err
		}
	}
	err = b.waitEvents(ctx, len(cmds), 30*time.Minute)
	elapsed := time.Since(start)
	used := meter.snapshot().sub(before)
	rss, stopErr := stop()
	if err != nil {
		return 0, 0, cpuUse{}, err
	}
	if stopErr != nil {
		return 0, 0, cpuUse{}, fmt.Errorf("worker exit: %w", stopErr)
	}
	return float64(len(cmds)) / elapsed.Seconds(), rss, used, nil
}

type latencies struct {
	n             int
	p50, p99, max time.Duration
	achieved      float64
}

// latency offers commands at a fixed rate and measures publish to outcome.
func (b *bench) latency(ctx context.Context, perSecond int, d time.Duration) (latencies, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return latencies{}, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return latencies{}, err
	}
	b.checkpoint(ctx)
	stop, _, err := b.worker(dbURL, "")
	if err != nil {
		return latencies{}, err
	}
	defer stop()
	if err := b.waitReady(ctx); err != nil {
		return latencies{}, err
	}
	n := int(float64(perSecond) * d.Seconds())
	cmds := generate(n, 0)
	for i := range cmds {
		cmds[i].id = fmt.Sprintf("lat%d-%s", perSecond, cmds[i].id)
		cmds[i].body = []byte(strings.Replace(string(cmds[i].body), `"command_id":"b-`, fmt.Sprintf(`"command_id":"lat%d-b-`, perSecond), 1))
	}
	sent := make(map[string]time.Time, n)
	var mu sync.Mutex
	lat := make([]time.Duration, 0, n)
	done := make(chan struct{})
	sub, err := b.nc.Subscribe(client.EventsSubject, func(m *nats.Msg) {
		var ev struct {
			CommandID string `json:"commandid"`
		}
		_ = json.Unmarshal(m.Data, &ev)
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if t, ok := sent[ev.CommandID]; ok {
			lat = append(lat, now.Sub(t))
			delete(sent, ev.CommandID)
			if len(lat) == n {
				close(done)
			}
		}
	})
	if err != nil {
		return latencies{}, err
	}
	defer sub.Unsubscribe()
	_ = sub.SetPendingLimits(-1, -1)
	b.logf("latency at %d/s for %s", perSecond, d)
	// Publish in small bursts every millisecond-ish to hold the rate.
	interval := time.Second / time.Duration(perSecond)
	start := time.Now()
	for i, c := range cmds {
		due := start.Add(time.Duration(i) * interval)
		if wait := time.Until(due); wait > 0 {
			time.Sleep(wait)
		}
		mu.Lock()
		sent[c.id] = time.Now()
		mu.Unlock()
		if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
			return latencies{}, err
		}
	}
	achieved := float64(n) / time.Since(start).Seconds()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return latencies{}, fmt.Errorf("latency run: outcomes missing")
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return latencies{n: n, p50: lat[len(lat)/2], p99: lat[len(lat)*99/100], max: lat[len(lat)-1], achieved: achieved}, nil
}

// queuedRSS queues n commands with no worker running, then starts one and
// reports its peak RSS once it has drained them.
func (b *bench) queuedRSS(ctx context.Context, n int) (int64, error) {
	dbURL, pool, err := b.newDatabase(ctx)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	if err := b.freshStreams(ctx); err != nil {
		return 0, err
	}
	b.logf("queueing %d commands", n)
	for lo := 0; lo < n; lo += 100000 {
		for _, c := range generateRange(lo, min(lo+100000, n)) {
			if _, err := b.js.PublishAsync(client.CreateSubject, c.body, jetstream.WithMsgID(c.id)); err != nil {
				return 0, err
			}
		}
		<-b.js.PublishAsyncComplete()
	}
	stop, _, err := b.worker(dbURL, "")
	if err != nil {
		return 0, err
	}
	err = b.waitEvents(ctx, n, time.Hour)
	rss, _ := stop()
	return rss, err
}

func generateRange(lo, hi int) []command {
	all := generate(hi, 0)
	for i := lo; i < hi; i++ {
		all[i].id = "q-" + all[i].id
		all[i].body = []byte(strings.Replace(string(all[i].body), `"command_id":"b-`, `"command_id":"q-b-`, 1))
	}
	return all[lo:hi]
}

func newUUID() string { return uuid.Must(uuid.NewV7()).String() }
