package deploy_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"simworker/client"
	"simworker/consumer"
	"simworker/domain"
)

// The deployment's NATS configuration, relative to this package.
const (
	serverConf = "nats/nats-server.conf"
	clusterDir = "nats/cluster"
)

// passwordEnv names the environment variable accounts.conf reads each
// user's password from.
var passwordEnv = map[string]string{
	"publisher": "SIM_PUBLISHER_PASSWORD",
	"worker":    "SIM_WORKER_PASSWORD",
	"operator":  "SIM_OPERATOR_PASSWORD",
}

// setPasswords sets a fresh random password for every user in the
// environment and returns them by user name. The "pw" prefix keeps a value
// from being all digits (the config parser would read it as a number).
func setPasswords(t *testing.T) map[string]string {
	t.Helper()
	pw := map[string]string{}
	for user, env := range passwordEnv {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		pw[user] = "pw" + hex.EncodeToString(b)
		t.Setenv(env, pw[user])
	}
	return pw
}

// checkUsers asserts the three users of accounts.conf are loaded, in
// account SIM, each with the password from its environment variable and
// with permissions.
func checkUsers(t *testing.T, opts *server.Options, pw map[string]string) {
	t.Helper()
	if len(opts.Users) != len(pw) {
		t.Errorf("%d users loaded, want %d", len(opts.Users), len(pw))
	}
	for name, want := range pw {
		i := slices.IndexFunc(opts.Users, func(u *server.User) bool { return u.Username == name })
		if i < 0 {
			t.Errorf("user %q missing", name)
			continue
		}
		u := opts.Users[i]
		if u.Password != want {
			t.Errorf("user %q: password is not $%s", name, passwordEnv[name])
		}
		if u.Account == nil || u.Account.Name != "SIM" {
			t.Errorf("user %q: not in account SIM (%v)", name, u.Account)
		}
		if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil {
			t.Errorf("user %q: publish and subscribe permissions missing", name)
		}
	}
}

// natsUser is a connection of one user; errs receives its asynchronous errors
// (permission violations arrive that way).
type natsUser struct {
	nc   *nats.Conn
	js   jetstream.JetStream
	errs chan error
}

func dial(t *testing.T, serverURL, user, password string) *natsUser {
	t.Helper()
	c := &natsUser{errs: make(chan error, 64)}
	var (
		mu   sync.Mutex
		done bool // no logging once the test is over
	)
	nc, err := nats.Connect(serverURL,
		nats.Name("deploy-test-"+user),
		nats.UserInfo(user, password),
		nats.PermissionErrOnSubscribe(true),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			mu.Lock()
			defer mu.Unlock()
			if done {
				return
			}
			t.Logf("%s: async error: %v", user, err)
			select {
			case c.errs <- err:
			default:
			}
		}))
	if err != nil {
		t.Fatalf("connect as %s: %v", user, err)
	}
	t.Cleanup(func() {
		mu.Lock()
		done = true
		mu.Unlock()
		nc.Close()
	})
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	return c
}

// expectDenied waits for the server's permission violation of an operation
// ("Publish" or "Subscription") on a subject starting with prefix.
func (c *natsUser) expectDenied(t *testing.T, op, prefix string) {
	t.Helper()
	want := fmt.Sprintf("Permissions Violation for %s to %q", op, prefix)
	want = want[:len(want)-1] // drop the closing quote: the subject may go on after prefix
	deadline := time.After(5 * time.Second)
	for {
		select {
		case err := <-c.errs:
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), want) {
				return
			}
		case <-deadline:
			t.Errorf("no permission violation %q… within 5s", want)
			return
		}
	}
}

// expectNoErrors fails on any asynchronous error received so far, such as a
// permission a working path turned out to need.
func (c *natsUser) expectNoErrors(t *testing.T) {
	t.Helper()
	// A PING round trip makes sure errors sent before it have arrived.
	if err := c.nc.Flush(); err != nil {
		t.Error(err)
	}
	for {
		select {
		case err := <-c.errs:
			t.Errorf("unexpected async error: %v", err)
		default:
			return
		}
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// outcome builds a sim.created outcome the way the worker stores one.
func outcome(t *testing.T, commandID string) domain.Outcome {
	t.Helper()
	eventID := uuid.NewString()
	ev, err := json.Marshal(domain.CloudEvent{
		SpecVersion: domain.SpecVersion, ID: eventID, Source: domain.DefaultSource,
		Type: domain.TypeCreated, Subject: "sim-" + commandID, Time: domain.FormatTime(time.Now()),
		DataContentType: domain.ContentTypeJSON, CommandID: commandID, Data: json.RawMessage(`{"sim_id":"sim-` + commandID + `"}`),
	})
	if err != nil {
		t.Fatal(err)
	}
	return domain.Outcome{CommandID: commandID, EventID: eventID, Type: domain.TypeCreated, Status: 201, SimID: "sim-" + commandID, Event: ev}
}

func awaitAck(t *testing.T, f jetstream.PubAckFuture) *jetstream.PubAck {
	t.Helper()
	select {
	case ack := <-f.Ok():
		return ack
	case err := <-f.Err():
		t.Fatalf("publish to %s: %v", f.Msg().Subject, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("publish to %s: no acknowledgement within 10s", f.Msg().Subject)
	}
	return nil
}

// consumerNames lists the consumers of a stream of account SIM, read from the
// server itself.
func consumerNames(t *testing.T, srv *server.Server, stream string) []string {
	t.Helper()
	jsz, err := srv.Jsz(&server.JSzOptions{Account: "SIM", Streams: true, Consumer: true})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, acc := range jsz.AccountDetails {
		for _, sd := range acc.Streams {
			if sd.Name == stream {
				for _, ci := range sd.Consumer {
					names = append(names, ci.Name)
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestServerConf starts nats-server.conf (with accounts.conf) and exercises
// every user's permissions with the project's own JetStream code.
func TestServerConf(t *testing.T) {
	pw := setPasswords(t) // t.Setenv: this test cannot be parallel

	opts, err := server.ProcessConfigFile(serverConf)
	if err != nil {
		t.Fatalf("load %s: %v", serverConf, err)
	}
	// What the file says, before the test's overrides.
	if opts.Port != 4222 {
		t.Errorf("client port %d, want 4222", opts.Port)
	}
	if !opts.JetStream {
		t.Error("JetStream is not enabled")
	}
	if opts.StoreDir == "" {
		t.Error("jetstream store_dir is not set")
	}
	if opts.SyncInterval != 10*time.Second || opts.SyncAlways {
		t.Errorf("sync_interval %v (always %v), want 10s", opts.SyncInterval, opts.SyncAlways)
	}
	if opts.MaxPayload != 1<<20 {
		t.Errorf("max_payload %d, want 1MiB", opts.MaxPayload)
	}
	if opts.Cluster.Name != "" || len(opts.Routes) != 0 {
		t.Errorf("single-node config has a cluster %q with %d routes", opts.Cluster.Name, len(opts.Routes))
	}
	checkUsers(t, opts, pw)

	opts.Host, opts.Port = "127.0.0.1", server.RANDOM_PORT
	opts.HTTPHost, opts.HTTPPort = "127.0.0.1", server.RANDOM_PORT
	opts.StoreDir = t.TempDir()
	opts.NoSigs = true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats-server not ready within 30s")
	}
	serverURL := srv.ClientURL()

	// ── worker: creates the streams and its durable consumer ──
	worker := dial(t, serverURL, "worker", pw["worker"])
	ctx := timeout(t, 60*time.Second)
	cons, err := consumer.Setup(ctx, worker.js, consumer.StreamConfig{})
	if err != nil {
		t.Fatalf("worker: consumer.Setup: %v", err)
	}
	if ci := cons.CachedInfo(); ci.Name != consumer.DurableName || ci.Config.FilterSubject != client.CreateSubject {
		t.Fatalf("worker: consumer %q filter %q", ci.Name, ci.Config.FilterSubject)
	}
	for _, name := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
		if _, err := worker.js.Stream(ctx, name); err != nil {
			t.Fatalf("worker: stream %s after Setup: %v", name, err)
		}
	}
	// A second start finds everything in place (the look-up path).
	if _, err := consumer.Setup(ctx, worker.js, consumer.StreamConfig{}); err != nil {
		t.Fatalf("worker: second consumer.Setup: %v", err)
	}

	// ── worker: publishes an outcome event and a dead letter ──
	commandID := uuid.NewString()
	out := outcome(t, commandID)
	f, err := client.PublishOutcome(worker.js, out)
	if err != nil {
		t.Fatalf("worker: publish event: %v", err)
	}
	if ack := awaitAck(t, f); ack.Stream != client.EventsStream || ack.Duplicate {
		t.Fatalf("worker: event acknowledged by %q (duplicate %v), want %s", ack.Stream, ack.Duplicate, client.EventsStream)
	}
	dl := nats.NewMsg(client.DeadLetterSubject)
	dl.Data = []byte(`{"command_id":"dead"}`)
	if ack, err := worker.js.PublishMsg(ctx, dl, jetstream.WithExpectStream(client.DeadLetterStream)); err != nil {
		t.Fatalf("worker: publish dead letter: %v", err)
	} else if ack.Stream != client.DeadLetterStream {
		t.Fatalf("worker: dead letter acknowledged by %q", ack.Stream)
	}

	// ── publisher: publishes a command ──
	publisher := dial(t, serverURL, "publisher", pw["publisher"])
	body := []byte(`{"command_id":"` + commandID + `","type":"sim.create"}`)
	ack, err := publisher.js.PublishMsg(ctx, client.CommandMsg(body, commandID), jetstream.WithExpectStream(client.CommandsStream))
	if err != nil {
		t.Fatalf("publisher: publish command: %v", err)
	}
	if ack.Stream != client.CommandsStream || ack.Sequence != 1 {
		t.Fatalf("publisher: command acknowledged as %s/%d, want %s/1", ack.Stream, ack.Sequence, client.CommandsStream)
	}

	// ── worker: pulls the command through its durable and acks it ──
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(10*time.Second))
	if err != nil {
		t.Fatalf("worker: fetch: %v", err)
	}
	var got []jetstream.Msg
	for m := range batch.Messages() {
		got = append(got, m)
	}
	if err := batch.Error(); err != nil {
		t.Fatalf("worker: fetch: %v", err)
	}
	if len(got) != 1 || string(got[0].Data()) != string(body) || got[0].Headers().Get(jetstream.MsgIDHeader) != commandID {
		t.Fatalf("worker: fetched %d messages, want the published command", len(got))
	}
	if err := got[0].InProgress(); err != nil {
		t.Fatalf("worker: in progress: %v", err)
	}
	if err := got[0].Ack(); err != nil {
		t.Fatalf("worker: ack: %v", err)
	}
	// Ack is fire-and-forget: the server must have applied it.
	var ci *jetstream.ConsumerInfo
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ci, err = cons.Info(ctx); err != nil {
			t.Fatalf("worker: consumer info: %v", err)
		}
		if ci.NumAckPending == 0 && ci.AckFloor.Stream == 1 || time.Now().After(deadline) {
			break
		}
	}
	if ci.NumAckPending != 0 || ci.AckFloor.Stream != 1 || ci.NumPending != 0 {
		t.Fatalf("worker: after ack: %d ack pending, ack floor %d, %d pending", ci.NumAckPending, ci.AckFloor.Stream, ci.NumPending)
	}

	// ── operator (simctl): Setup as a look-up, ordered consumers, republish ──
	operator := dial(t, serverURL, "operator", pw["operator"])
	if _, err := consumer.Setup(ctx, operator.js, consumer.StreamConfig{}); err != nil {
		t.Fatalf("operator: consumer.Setup: %v", err)
	}
	// simctl replay: stream info, then an ordered consumer fetched in a loop.
	cs, err := operator.js.Stream(ctx, client.CommandsStream)
	if err != nil {
		t.Fatalf("operator: stream %s: %v", client.CommandsStream, err)
	}
	if info, err := cs.Info(ctx); err != nil || info.State.LastSeq != 1 {
		t.Fatalf("operator: stream info: %v (%+v)", err, info)
	}
	oc, err := operator.js.OrderedConsumer(ctx, client.CommandsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{client.CreateSubject}})
	if err != nil {
		t.Fatalf("operator: ordered consumer: %v", err)
	}
	replayed := 0
	for i := range 2 { // the second fetch finds nothing, and replaces the first consumer
		batch, err := oc.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("operator: replay fetch %d: %v", i, err)
		}
		for m := range batch.Messages() {
			if string(m.Data()) != string(body) {
				t.Errorf("operator: replay read %q", m.Data())
			}
			replayed++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Fatalf("operator: replay fetch %d: %v", i, err)
		}
	}
	if replayed != 1 {
		t.Fatalf("operator: replay read %d commands, want 1", replayed)
	}
	// The consumer of the first fetch is deleted (asynchronously): only the
	// worker's durable and the current ordered consumer remain.
	var names []string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if names = consumerNames(t, srv, client.CommandsStream); len(names) == 2 || time.Now().After(deadline) {
			break
		}
	}
	if len(names) != 2 || !slices.Contains(names, consumer.DurableName) {
		t.Fatalf("operator: consumers of %s after replay: %v, want simworker and one ordered consumer", client.CommandsStream, names)
	}
	// simctl --wait: WatchOutcomes reads SIM_EVENTS with an ordered consumer.
	seen := make(chan client.Event, 8)
	stop, err := client.WatchOutcomes(ctx, operator.js, time.Now(), func(e client.Event) { seen <- e })
	if err != nil {
		t.Fatalf("operator: WatchOutcomes: %v", err)
	}
	select {
	case e := <-seen:
		if e.ID != out.EventID || e.CommandID != commandID {
			t.Fatalf("operator: read event %s of command %s, want %s of %s", e.ID, e.CommandID, out.EventID, commandID)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("operator: no event read from SIM_EVENTS within 10s")
	}
	stop()
	// simctl events republish: same event id, de-duplicated by JetStream.
	f, err = client.PublishOutcome(operator.js, out)
	if err != nil {
		t.Fatalf("operator: republish: %v", err)
	}
	if ack := awaitAck(t, f); ack.Stream != client.EventsStream || !ack.Duplicate {
		t.Fatalf("operator: republish acknowledged by %q (duplicate %v), want a duplicate in %s", ack.Stream, ack.Duplicate, client.EventsStream)
	}
	for role, c := range map[string]*natsUser{"worker": worker, "publisher": publisher, "operator": operator} {
		t.Run("no errors/"+role, c.expectNoErrors)
	}

	// ── what each user must not do ──
	t.Run("refused", func(t *testing.T) {
		denied := func(t *testing.T, c *natsUser, op, prefix string, err error) {
			t.Helper()
			if err == nil {
				t.Errorf("%s %s succeeded", op, prefix)
			}
			c.expectDenied(t, op, prefix)
		}
		t.Run("anonymous", func(t *testing.T) {
			t.Parallel()
			nc, err := nats.Connect(serverURL)
			if err == nil {
				nc.Close()
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect without credentials: %v, want an authorization violation", err)
			}
		})
		t.Run("wrong password", func(t *testing.T) {
			t.Parallel()
			nc, err := nats.Connect(serverURL, nats.UserInfo("worker", pw["operator"]))
			if err == nil {
				nc.Close()
			}
			if !errors.Is(err, nats.ErrAuthorization) {
				t.Errorf("connect as worker with another password: %v, want an authorization violation", err)
			}
		})
		for _, tc := range []struct{ user, subject string }{
			{"worker", client.CreateSubject},
			{"publisher", domain.SubjectCreated},
			{"publisher", client.DeadLetterSubject},
			{"operator", client.DeadLetterSubject},
		} {
			t.Run(tc.user+" publish "+tc.subject, func(t *testing.T) {
				t.Parallel()
				c := dial(t, serverURL, tc.user, pw[tc.user])
				m := nats.NewMsg(tc.subject)
				m.Data = []byte(`{}`)
				_, err := c.js.PublishMsg(timeout(t, 2*time.Second), m)
				denied(t, c, "Publish", tc.subject, err)
			})
		}
		t.Run("publisher subscribe commands", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "publisher", pw["publisher"])
			sub, err := c.nc.SubscribeSync(client.CommandsSubject)
			if err == nil {
				_, err = sub.NextMsg(5 * time.Second)
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Errorf("next message: %v, want a permissions violation", err)
				}
			}
			c.expectDenied(t, "Subscription", client.CommandsSubject)
		})
		t.Run("publisher read commands through JetStream", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "publisher", pw["publisher"])
			_, err := c.js.CreateConsumer(timeout(t, 2*time.Second), client.CommandsStream,
				jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, FilterSubject: client.CreateSubject})
			denied(t, c, "Publish", "$JS.API.CONSUMER.CREATE."+client.CommandsStream+".", err)
		})
		t.Run("publisher stream info", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "publisher", pw["publisher"])
			_, err := c.js.Stream(timeout(t, 2*time.Second), client.CommandsStream)
			denied(t, c, "Publish", "$JS.API.STREAM.INFO."+client.CommandsStream, err)
		})
		t.Run("operator create stream", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "operator", pw["operator"])
			_, err := c.js.CreateStream(timeout(t, 2*time.Second), jetstream.StreamConfig{Name: "SIM_OTHER", Subjects: []string{"other.>"}})
			denied(t, c, "Publish", "$JS.API.STREAM.CREATE.SIM_OTHER", err)
		})
		t.Run("operator touch the worker's durable", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "operator", pw["operator"])
			err := c.js.DeleteConsumer(timeout(t, 2*time.Second), client.CommandsStream, consumer.DurableName)
			denied(t, c, "Publish", "$JS.API.CONSUMER.DELETE."+client.CommandsStream+"."+consumer.DurableName, err)
			_, err = c.js.CreateOrUpdateConsumer(timeout(t, 2*time.Second), client.CommandsStream,
				jetstream.ConsumerConfig{Durable: consumer.DurableName, FilterSubject: client.CreateSubject, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 1})
			denied(t, c, "Publish", "$JS.API.CONSUMER.CREATE."+client.CommandsStream+"."+consumer.DurableName, err)
			// Looking the durable up is allowed (consumer.Setup); pulling from it is not.
			wc, err := c.js.Consumer(timeout(t, 5*time.Second), client.CommandsStream, consumer.DurableName)
			if err != nil {
				t.Fatalf("look up %s: %v", consumer.DurableName, err)
			}
			batch, err := wc.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err == nil {
				for range batch.Messages() {
					t.Error("operator pulled a message from the worker's durable")
				}
			}
			c.expectDenied(t, "Publish", "$JS.API.CONSUMER.MSG.NEXT."+client.CommandsStream+"."+consumer.DurableName)
		})
	})

	// Nothing refused reached a stream, and the worker's durable is intact.
	for stream, want := range map[string]uint64{client.CommandsStream: 1, client.EventsStream: 1, client.DeadLetterStream: 1} {
		s, err := operator.js.Stream(ctx, stream)
		if err != nil {
			t.Fatalf("operator: stream %s: %v", stream, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			t.Fatalf("operator: stream %s info: %v", stream, err)
		}
		if info.State.Msgs != want {
			t.Errorf("stream %s holds %d messages, want %d", stream, info.State.Msgs, want)
		}
	}
	if ci, err := cons.Info(ctx); err != nil {
		t.Errorf("worker: durable after the refusals: %v", err)
	} else if ci.Config.MaxDeliver != -1 || ci.NumPending != 0 || ci.NumAckPending != 0 {
		t.Errorf("worker: durable changed: max deliver %d, %d pending, %d ack pending", ci.Config.MaxDeliver, ci.NumPending, ci.NumAckPending)
	}
}

// TestClusterConfs parses the three cluster node configurations.
func TestClusterConfs(t *testing.T) {
	pw := setPasswords(t) // subtests may be parallel: the variables stay set until they end
	wantRoutes := []string{"127.0.0.1:6222", "127.0.0.1:6223", "127.0.0.1:6224"}
	for i, node := range []string{"a", "b", "c"} {
		t.Run("node-"+node, func(t *testing.T) {
			t.Parallel()
			path := clusterDir + "/node-" + node + ".conf"
			opts, err := server.ProcessConfigFile(path)
			if err != nil {
				t.Fatalf("load %s: %v", path, err)
			}
			if opts.ServerName != "sim-"+node {
				t.Errorf("server_name %q, want sim-%s", opts.ServerName, node)
			}
			if opts.Port != 4222+i || opts.Cluster.Port != 6222+i {
				t.Errorf("ports: client %d, cluster %d; want %d, %d", opts.Port, opts.Cluster.Port, 4222+i, 6222+i)
			}
			if opts.Cluster.Name != "sim" {
				t.Errorf("cluster name %q, want sim", opts.Cluster.Name)
			}
			var routes []string
			for _, r := range opts.Routes {
				if r.Scheme != "nats-route" {
					t.Errorf("route %s: scheme %q", r, r.Scheme)
				}
				routes = append(routes, r.Host)
			}
			slices.Sort(routes)
			if !slices.Equal(routes, wantRoutes) {
				t.Errorf("routes %v, want %v", routes, wantRoutes)
			}
			if !slices.Contains(routes, fmt.Sprintf("127.0.0.1:%d", opts.Cluster.Port)) {
				t.Errorf("routes do not include the node's own cluster port %d", opts.Cluster.Port)
			}
			if !opts.JetStream || opts.StoreDir != "/var/lib/nats/node-"+node+"/jetstream" {
				t.Errorf("jetstream %v, store_dir %q", opts.JetStream, opts.StoreDir)
			}
			if opts.SyncInterval != 10*time.Second || opts.SyncAlways {
				t.Errorf("sync_interval %v (always %v), want 10s", opts.SyncInterval, opts.SyncAlways)
			}
			checkUsers(t, opts, pw)
		})
	}
}

// TestClusterConfsListed guards TestClusterConfs against a node file added
// or renamed without it.
func TestClusterConfsListed(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(clusterDir, "*.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	if want := []string{"node-a.conf", "node-b.conf", "node-c.conf"}; !slices.Equal(files, want) {
		t.Errorf("%s holds %v, want %v", clusterDir, files, want)
	}
}
