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
	"api":       "SIM_API_PASSWORD",
}

// inboxPrefix is each user's inbox prefix: the NATS_INBOX_PREFIX its client
// is deployed with, and the only inbox accounts.conf lets it subscribe to.
var inboxPrefix = map[string]string{
	"publisher": "_INBOX_publisher",
	"worker":    "_INBOX_worker",
	"operator":  "_INBOX_operator",
	"api":       "_INBOX_api",
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

// checkUsers asserts the users of accounts.conf are loaded, in account SIM,
// each with the password from its environment variable and with
// permissions, of which the only inbox it may subscribe to is its own.
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
			continue
		}
		var inboxes []string
		for _, s := range u.Permissions.Subscribe.Allow {
			if s == ">" || strings.HasPrefix(s, "_INBOX") || strings.HasPrefix(s, "*") {
				inboxes = append(inboxes, s)
			}
		}
		if want := []string{inboxPrefix[name] + ".>"}; !slices.Equal(inboxes, want) {
			t.Errorf("user %q may subscribe to the inboxes %v, want only %v", name, inboxes, want)
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

// dial connects as user with its role's inbox prefix, as cli.NATS.Connect
// does with NATS_INBOX_PREFIX.
func dial(t *testing.T, serverURL, user, password string) *natsUser {
	t.Helper()
	return dialPrefix(t, serverURL, user, password, inboxPrefix[user])
}

// dialPrefix connects as user with the inbox prefix prefix ("": nats.go's
// default, _INBOX).
func dialPrefix(t *testing.T, serverURL, user, password, prefix string) *natsUser {
	t.Helper()
	c := &natsUser{errs: make(chan error, 64)}
	var (
		mu   sync.Mutex
		done bool // no logging once the test is over
	)
	opts := []nats.Option{
		nats.Name("deploy-test-" + user),
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
		}),
	}
	if prefix != "" {
		opts = append(opts, nats.CustomInboxPrefix(prefix))
	}
	nc, err := nats.Connect(serverURL, opts...)
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

// subscribeDenied subscribes c to subject and expects the server's
// permission violation, and no message.
func subscribeDenied(t *testing.T, c *natsUser, subject string) {
	t.Helper()
	sub, err := c.nc.SubscribeSync(subject)
	if err == nil {
		_, err = sub.NextMsg(5 * time.Second)
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("subscribe %s: next message: %v, want a permissions violation", subject, err)
		}
	}
	c.expectDenied(t, "Subscription", subject)
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

// startServer starts nats-server with opts (a loaded configuration file) on
// random local ports, with a temporary store, and stops it in cleanup.
func startServer(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
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
	return srv
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

	srv := startServer(t, opts)
	serverURL := srv.ClientURL()

	// Each step needs the ones before it: the first to fail ends the test.
	// Connections are the whole test's (dialled with top: a step's own t
	// would close them when the step ends).
	top := t
	step := func(name string, f func(t *testing.T)) {
		t.Helper()
		if !t.Run(name, f) {
			t.FailNow()
		}
	}
	var (
		api, worker, publisher, operator *natsUser
		apiEvents                        = make(chan *nats.Msg, 8)
		ctx                              = timeout(t, 60*time.Second)
		cons                             jetstream.Consumer
		commandID                        = uuid.NewString()
		out                              domain.Outcome
		commands                         map[string]string
		body                             []byte
	)

	step("api subscribes to the outcomes", func(t *testing.T) {
		api = dial(top, serverURL, "api", pw["api"])
		if _, err := api.nc.ChanSubscribe(client.EventsSubject, apiEvents); err != nil {
			t.Fatalf("api: subscribe %s: %v", client.EventsSubject, err)
		}
		if err := api.nc.Flush(); err != nil {
			t.Fatal(err)
		}
	})

	step("worker sets up the streams and its consumer", func(t *testing.T) {
		worker = dial(top, serverURL, "worker", pw["worker"])
		var err error
		cons, err = client.Setup(ctx, worker.js, client.StreamConfig{})
		if err != nil {
			t.Fatalf("worker: client.Setup: %v", err)
		}
		if ci := cons.CachedInfo(); ci.Name != client.DurableName || ci.Config.FilterSubject != client.CreateSubject {
			t.Fatalf("worker: consumer %q filter %q", ci.Name, ci.Config.FilterSubject)
		}
		for _, name := range []string{client.CommandsStream, client.EventsStream, client.DeadLetterStream} {
			if _, err := worker.js.Stream(ctx, name); err != nil {
				t.Fatalf("worker: stream %s after Setup: %v", name, err)
			}
		}
		// A second start finds everything in place (the look-up path).
		if _, err := client.Setup(ctx, worker.js, client.StreamConfig{}); err != nil {
			t.Fatalf("worker: second client.Setup: %v", err)
		}
	})

	step("worker publishes an event and a dead letter", func(t *testing.T) {
		out = outcome(t, commandID)
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
	})

	step("api receives the event", func(t *testing.T) {
		select {
		case m := <-apiEvents:
			e, err := client.ParseEvent(m.Data)
			if err != nil || m.Subject != client.SubjectCreated || e.ID != out.EventID {
				t.Fatalf("api: received %s event %q (%v), want %s event %s", m.Subject, e.ID, err, client.SubjectCreated, out.EventID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("api: no event on %s within 10s", client.EventsSubject)
		}
	})

	step("publisher publishes a command", func(t *testing.T) {
		publisher = dial(top, serverURL, "publisher", pw["publisher"])
		body = []byte(`{"command_id":"` + commandID + `","type":"sim.create"}`)
		ack, err := publisher.js.PublishMsg(ctx, client.CommandMsg(body, commandID), jetstream.WithExpectStream(client.CommandsStream))
		if err != nil {
			t.Fatalf("publisher: publish command: %v", err)
		}
		if ack.Stream != client.CommandsStream || ack.Sequence != 1 {
			t.Fatalf("publisher: command acknowledged as %s/%d, want %s/1", ack.Stream, ack.Sequence, client.CommandsStream)
		}
	})

	step("api publishes a command", func(t *testing.T) {
		apiCommandID := uuid.NewString()
		apiBody := []byte(`{"command_id":"` + apiCommandID + `","actor_id":"u-1","sim":{}}`)
		ack, err := api.js.PublishMsg(ctx, client.CommandMsg(apiBody, apiCommandID), jetstream.WithExpectStream(client.CommandsStream))
		if err != nil {
			t.Fatalf("api: publish command: %v", err)
		}
		if ack.Stream != client.CommandsStream || ack.Sequence != 2 {
			t.Fatalf("api: command acknowledged as %s/%d, want %s/2", ack.Stream, ack.Sequence, client.CommandsStream)
		}
		commands = map[string]string{commandID: string(body), apiCommandID: string(apiBody)}
	})

	step("worker pulls and acks both commands", func(t *testing.T) {
		batch, err := cons.Fetch(2, jetstream.FetchMaxWait(10*time.Second))
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
		if len(got) != 2 {
			t.Fatalf("worker: fetched %d messages, want the 2 published commands", len(got))
		}
		for _, m := range got {
			if id := m.Headers().Get(jetstream.MsgIDHeader); commands[id] != string(m.Data()) {
				t.Fatalf("worker: fetched %q (Nats-Msg-Id %q), not a published command", m.Data(), id)
			}
			if err := m.InProgress(); err != nil {
				t.Fatalf("worker: in progress: %v", err)
			}
			if err := m.Ack(); err != nil {
				t.Fatalf("worker: ack: %v", err)
			}
		}
		// Ack is fire-and-forget: the server must have applied it.
		var ci *jetstream.ConsumerInfo
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if ci, err = cons.Info(ctx); err != nil {
				t.Fatalf("worker: consumer info: %v", err)
			}
			if ci.NumAckPending == 0 && ci.AckFloor.Stream == 2 || time.Now().After(deadline) {
				break
			}
		}
		if ci.NumAckPending != 0 || ci.AckFloor.Stream != 2 || ci.NumPending != 0 {
			t.Fatalf("worker: after ack: %d ack pending, ack floor %d, %d pending", ci.NumAckPending, ci.AckFloor.Stream, ci.NumPending)
		}
	})

	step("operator looks up, replays, tails and republishes", func(t *testing.T) {
		operator = dial(top, serverURL, "operator", pw["operator"])
		if _, err := client.Setup(ctx, operator.js, client.StreamConfig{}); err != nil {
			t.Fatalf("operator: client.Setup: %v", err)
		}
		// simctl replay: stream info, then an ordered consumer fetched in a loop.
		cs, err := operator.js.Stream(ctx, client.CommandsStream)
		if err != nil {
			t.Fatalf("operator: stream %s: %v", client.CommandsStream, err)
		}
		if info, err := cs.Info(ctx); err != nil || info.State.LastSeq != 2 {
			t.Fatalf("operator: stream info: %v (%+v)", err, info)
		}
		oc, err := operator.js.OrderedConsumer(ctx, client.CommandsStream, jetstream.OrderedConsumerConfig{FilterSubjects: []string{client.CreateSubject}})
		if err != nil {
			t.Fatalf("operator: ordered consumer: %v", err)
		}
		replayed := 0
		for i := range 2 { // the second fetch finds nothing, and replaces the first consumer
			batch, err := oc.Fetch(2, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				t.Fatalf("operator: replay fetch %d: %v", i, err)
			}
			for m := range batch.Messages() {
				if commands[m.Headers().Get(jetstream.MsgIDHeader)] != string(m.Data()) {
					t.Errorf("operator: replay read %q", m.Data())
				}
				replayed++
			}
			if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
				t.Fatalf("operator: replay fetch %d: %v", i, err)
			}
		}
		if replayed != 2 {
			t.Fatalf("operator: replay read %d commands, want 2", replayed)
		}
		// The consumer of the first fetch is deleted (asynchronously): only the
		// worker's durable and the current ordered consumer remain.
		var names []string
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if names = consumerNames(t, srv, client.CommandsStream); len(names) == 2 || time.Now().After(deadline) {
				break
			}
		}
		if len(names) != 2 || !slices.Contains(names, client.DurableName) {
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
		// simctl tail --since: an ordered consumer of SIM_EVENTS, fetched.
		tc, err := operator.js.OrderedConsumer(ctx, client.EventsStream, jetstream.OrderedConsumerConfig{
			FilterSubjects: []string{client.EventsSubject}, DeliverPolicy: jetstream.DeliverAllPolicy})
		if err != nil {
			t.Fatalf("operator: tail: ordered consumer: %v", err)
		}
		tailed, err := tc.Fetch(100, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatalf("operator: tail fetch: %v", err)
		}
		var tailIDs []string
		for m := range tailed.Messages() {
			e, err := client.ParseEvent(m.Data())
			if err != nil {
				t.Fatalf("operator: tail read %q: %v", m.Data(), err)
			}
			tailIDs = append(tailIDs, e.ID)
		}
		if err := tailed.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			t.Fatalf("operator: tail fetch: %v", err)
		}
		if !slices.Equal(tailIDs, []string{out.EventID}) {
			t.Fatalf("operator: tail read events %v, want [%s]", tailIDs, out.EventID)
		}
		// simctl events republish: same event id, de-duplicated by JetStream.
		f, err := client.PublishOutcome(operator.js, out)
		if err != nil {
			t.Fatalf("operator: republish: %v", err)
		}
		if ack := awaitAck(t, f); ack.Stream != client.EventsStream || !ack.Duplicate {
			t.Fatalf("operator: republish acknowledged by %q (duplicate %v), want a duplicate in %s", ack.Stream, ack.Duplicate, client.EventsStream)
		}
	})

	for role, c := range map[string]*natsUser{"worker": worker, "publisher": publisher, "operator": operator, "api": api} {
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
			// The API answers with what sim.events.> says: only the worker
			// (and the operator, who re-publishes) may publish there.
			{"publisher", client.SubjectCreated},
			{"publisher", client.SubjectRejected},
			{"publisher", client.DeadLetterSubject},
			{"operator", client.DeadLetterSubject},
			{"api", client.SubjectCreated},
			{"api", client.SubjectRejected},
			{"api", client.DeadLetterSubject},
			{"api", client.CreateSubject + ".other"},
			// forged replies: a message injected into the worker's pull
			{"publisher", inboxPrefix["worker"] + ".forged"},
			{"api", inboxPrefix["worker"] + ".forged"},
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
		for _, tc := range []struct{ user, subject string }{
			{"publisher", client.CommandsSubject},
			{"api", client.CommandsSubject},
			{"api", "sim.deadletter.>"},
		} {
			t.Run(tc.user+" subscribe "+tc.subject, func(t *testing.T) {
				t.Parallel()
				subscribeDenied(t, dial(t, serverURL, tc.user, pw[tc.user]), tc.subject)
			})
		}
		// Every user may read its own inbox only: not the shared _INBOX
		// nor another role's.
		for user := range inboxPrefix {
			others := []string{"_INBOX.>", ">"}
			for other, prefix := range inboxPrefix {
				if other != user {
					others = append(others, prefix+".>")
				}
			}
			for _, subject := range others {
				t.Run(user+" subscribe "+subject, func(t *testing.T) {
					t.Parallel()
					subscribeDenied(t, dial(t, serverURL, user, pw[user]), subject)
				})
			}
		}
		t.Run("worker without its inbox prefix", func(t *testing.T) {
			t.Parallel()
			// nats.go's default _INBOX: no reply can reach it.
			c := dialPrefix(t, serverURL, "worker", pw["worker"], "")
			_, err := c.js.Stream(timeout(t, 2*time.Second), client.CommandsStream)
			denied(t, c, "Subscription", "_INBOX.", err)
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
		t.Run("api read commands through JetStream", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "api", pw["api"])
			_, err := c.js.CreateConsumer(timeout(t, 2*time.Second), client.CommandsStream,
				jetstream.ConsumerConfig{AckPolicy: jetstream.AckNonePolicy, FilterSubject: client.CreateSubject})
			denied(t, c, "Publish", "$JS.API.CONSUMER.CREATE."+client.CommandsStream+".", err)
		})
		t.Run("api stream info", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "api", pw["api"])
			_, err := c.js.Stream(timeout(t, 2*time.Second), client.CommandsStream)
			denied(t, c, "Publish", "$JS.API.STREAM.INFO."+client.CommandsStream, err)
		})
		t.Run("api create stream", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "api", pw["api"])
			_, err := c.js.CreateStream(timeout(t, 2*time.Second), jetstream.StreamConfig{Name: "SIM_OTHER", Subjects: []string{"other.>"}})
			denied(t, c, "Publish", "$JS.API.STREAM.CREATE.SIM_OTHER", err)
		})
		t.Run("api delete stream", func(t *testing.T) {
			t.Parallel()
			c := dial(t, serverURL, "api", pw["api"])
			err := c.js.DeleteStream(timeout(t, 2*time.Second), client.CommandsStream)
			denied(t, c, "Publish", "$JS.API.STREAM.DELETE."+client.CommandsStream, err)
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
			err := c.js.DeleteConsumer(timeout(t, 2*time.Second), client.CommandsStream, client.DurableName)
			denied(t, c, "Publish", "$JS.API.CONSUMER.DELETE."+client.CommandsStream+"."+client.DurableName, err)
			_, err = c.js.CreateOrUpdateConsumer(timeout(t, 2*time.Second), client.CommandsStream,
				jetstream.ConsumerConfig{Durable: client.DurableName, FilterSubject: client.CreateSubject, AckPolicy: jetstream.AckExplicitPolicy, MaxDeliver: 1})
			denied(t, c, "Publish", "$JS.API.CONSUMER.CREATE."+client.CommandsStream+"."+client.DurableName, err)
			// Looking the durable up is allowed (client.Setup); pulling from it is not.
			wc, err := c.js.Consumer(timeout(t, 5*time.Second), client.CommandsStream, client.DurableName)
			if err != nil {
				t.Fatalf("look up %s: %v", client.DurableName, err)
			}
			batch, err := wc.Fetch(1, jetstream.FetchMaxWait(time.Second))
			if err == nil {
				for range batch.Messages() {
					t.Error("operator pulled a message from the worker's durable")
				}
			}
			c.expectDenied(t, "Publish", "$JS.API.CONSUMER.MSG.NEXT."+client.CommandsStream+"."+client.DurableName)
		})
	})

	// Nothing refused reached a stream, and the worker's durable is intact
	// (simctl status: the streams and the durable, looked up by the operator).
	for stream, want := range map[string]uint64{client.CommandsStream: 2, client.EventsStream: 1, client.DeadLetterStream: 1} {
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
	if _, err := operator.js.Consumer(ctx, client.CommandsStream, client.DurableName); err != nil {
		t.Errorf("operator: durable %s: %v", client.DurableName, err)
	}
	operator.expectNoErrors(t)
	if ci, err := cons.Info(ctx); err != nil {
		t.Errorf("worker: durable after the refusals: %v", err)
	} else if ci.Config.MaxDeliver != -1 || ci.NumPending != 0 || ci.NumAckPending != 0 {
		t.Errorf("worker: durable changed: max deliver %d, %d pending, %d ack pending", ci.Config.MaxDeliver, ci.NumPending, ci.NumAckPending)
	}
}

// TestWorkerDeliveriesPrivate: while the worker pulls commands through its
// durable (cons.Consume, as consumer.Worker does) on its own inbox prefix,
// the other users try to read them on the worker's inbox, the shared
// _INBOX and everything: each attempt is refused and nothing reaches them.
func TestWorkerDeliveriesPrivate(t *testing.T) {
	pw := setPasswords(t) // t.Setenv: this test cannot be parallel
	opts, err := server.ProcessConfigFile(serverConf)
	if err != nil {
		t.Fatalf("load %s: %v", serverConf, err)
	}
	srv := startServer(t, opts)
	serverURL := srv.ClientURL()
	ctx := timeout(t, 60*time.Second)

	worker := dial(t, serverURL, "worker", pw["worker"])
	cons, err := client.Setup(ctx, worker.js, client.StreamConfig{})
	if err != nil {
		t.Fatalf("worker: client.Setup: %v", err)
	}

	// The eavesdroppers subscribe before anything is pulled; whatever reaches
	// them goes to leaked.
	type leak struct{ user, sub, subject string }
	leaked := make(chan leak, 64)
	spies := map[string]*natsUser{}
	for _, user := range []string{"publisher", "api", "operator"} {
		c := dial(t, serverURL, user, pw[user])
		spies[user] = c
		for _, subject := range []string{inboxPrefix["worker"] + ".>", "_INBOX.>", ">"} {
			_, err := c.nc.Subscribe(subject, func(m *nats.Msg) {
				select {
				case leaked <- leak{user, subject, m.Subject}:
				default:
				}
			})
			if err != nil {
				t.Fatalf("%s: subscribe %s: %v", user, subject, err)
			}
			// One at a time: expectDenied drops the errors it is not waiting for.
			c.expectDenied(t, "Subscription", subject)
		}
	}

	// Commands from the publisher and the API, pulled by the worker.
	const n = 10
	want := map[string]bool{}
	for i := range n {
		from := spies["publisher"]
		if i%2 == 1 {
			from = spies["api"]
		}
		id := uuid.NewString()
		want[id] = true
		body := []byte(`{"command_id":"` + id + `","type":"sim.create"}`)
		if _, err := from.js.PublishMsg(ctx, client.CommandMsg(body, id), jetstream.WithExpectStream(client.CommandsStream)); err != nil {
			t.Fatalf("publish command %d: %v", i, err)
		}
	}
	pulled := make(chan jetstream.Msg, n)
	cc, err := cons.Consume(func(m jetstream.Msg) {
		if err := m.Ack(); err != nil {
			t.Errorf("worker: ack: %v", err)
		}
		pulled <- m
	}, jetstream.PullMaxMessages(4)) // several pull requests, each on a new reply subject
	if err != nil {
		t.Fatalf("worker: consume: %v", err)
	}
	t.Cleanup(cc.Stop)
	deadline := time.After(10 * time.Second)
	for range n {
		select {
		case m := <-pulled:
			if id := m.Headers().Get(jetstream.MsgIDHeader); !want[id] || !strings.HasPrefix(m.Reply(), "$JS.ACK.") {
				t.Fatalf("worker: pulled command %q (reply %q), not one published", id, m.Reply())
			}
		case <-deadline:
			t.Fatalf("worker: pulled fewer than %d commands within 10s", n)
		}
	}
	if ci, err := cons.Info(ctx); err != nil || ci.NumPending != 0 {
		t.Fatalf("worker: consumer info after the pulls: %v (%+v)", err, ci)
	}
	worker.expectNoErrors(t)

	// The deliveries went out on the worker's inbox; a PING round trip on
	// every eavesdropper's connection, and a short bounded wait on top,
	// leave time for any copy to arrive.
	for user, c := range spies {
		if err := c.nc.Flush(); err != nil {
			t.Fatalf("%s: flush: %v", user, err)
		}
	}
	select {
	case l := <-leaked:
		t.Fatalf("%s read %s through its subscription to %s", l.user, l.subject, l.sub)
	case <-time.After(500 * time.Millisecond):
	}
	for user, c := range spies {
		t.Run("no other errors/"+user, c.expectNoErrors)
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
