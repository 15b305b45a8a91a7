package docs_test

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"simworker/docs"
)

// chromium finds the browser: $CHROMIUM, Debian's /usr/bin/chromium, or one
// on PATH. Its absence fails the test: the reference is only known to work
// once a browser has shown it.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("CHROMIUM"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			t.Fatalf("CHROMIUM is %s, which cannot be run: %v", p, err)
		}
		return p
	}
	if _, err := os.Stat("/usr/bin/chromium"); err == nil {
		return "/usr/bin/chromium"
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed; this test drives it to check the API reference. " +
		"Run `make chromium` (scripts/ensure-chromium.sh: as root it installs Debian's chromium with apt-get), " +
		"or install it yourself (Debian: apt-get install -y chromium), or point CHROMIUM at a Chromium or Chrome")
	return ""
}

// browserLog is what the page did, as the browser reported it.
type browserLog struct {
	mu       sync.Mutex
	requests []string
	problems []string // exceptions, errors and policy violations
}

func (b *browserLog) add(list *[]string, s string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	*list = append(*list, s)
}

func (b *browserLog) snapshot() (requests, problems []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.requests...), append([]string(nil), b.problems...)
}

// A real browser shows the reference: every operation, ready to try, with
// nothing loaded from outside the server and nothing going wrong on the way.
// Set DOCS_SCREENSHOT=FILE.png to keep a picture of the page.
func TestReferenceInABrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the browser test starts Chromium")
	}
	t.Parallel()
	execPath := chromium(t)
	srv := httptest.NewServer(docs.Handler(nil))
	t.Cleanup(srv.Close)

	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(execPath),
		chromedp.Headless,
		chromedp.NoSandbox, // needed as root, harmless otherwise
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		// Without these Chromium calls Google's services at start, which a
		// closed network refuses; none of it is needed to show a page.
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1400),
	)
	t.Cleanup(cancelAlloc)

	// What the page does, seen in the order the browser reports it. chromedp
	// enables the Network, Log and Runtime domains of a tab.
	var seen browserLog
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithListener(func(ev any) {
		switch ev := ev.(type) {
		case *network.EventRequestWillBeSent:
			seen.add(&seen.requests, ev.Request.URL)
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			text := d.Text
			if d.Exception != nil {
				text += " " + d.Exception.Description
			}
			seen.add(&seen.problems, "exception: "+text)
		case *log.EventEntryAdded: // policy violations and failed loads land here
			e := ev.Entry
			if e.Level == log.EntryLevelError || e.Source == log.EntrySourceViolation || e.Source == log.EntrySourceSecurity {
				seen.add(&seen.problems, string(e.Source)+" "+string(e.Level)+": "+e.Text+" "+e.URL)
			}
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				seen.add(&seen.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		}
	}))
	t.Cleanup(cancel)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancelTimeout)

	// An operation's summary, by its exact text (XPath, through DOM.performSearch).
	summary := func(text string) chromedp.Search {
		return chromedp.Search(`//*[contains(concat(" ", normalize-space(@class), " "), " opblock-summary-description ")]` +
			`[normalize-space(.)="` + text + `"]`)
	}
	err := chromedp.Do(ctx,
		chromedp.Navigate(srv.URL+"/docs"), // the redirect to /docs/ included
		chromedp.WaitVisible(summary("Create a SIM")),
		chromedp.WaitVisible(summary("Get a SIM")),
		chromedp.WaitVisible(summary("Get the state of a command")),
		// Open "Create a SIM": tryItOutEnabled makes it ready to send at once.
		chromedp.Click(summary("Create a SIM")),
		chromedp.WaitVisible(chromedp.CSS(`#operations-SIMs-createSim button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(`#operations-SIMs-createSim textarea.body-param__text`)),
	)
	var title string
	if err == nil {
		title, err = chromedp.Run(ctx, chromedp.Title())
	}
	if p := os.Getenv("DOCS_SCREENSHOT"); p != "" && err == nil {
		var shot []byte
		if shot, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
			err = os.WriteFile(p, shot, 0o644)
			t.Logf("screenshot: %s", p)
		}
	}
	requests, problems := seen.snapshot()
	if err != nil {
		t.Fatalf("the page did not show the API: %v\nrequests: %q\nproblems: %q", err, requests, problems)
	}
	if title != "SIM API reference" {
		t.Errorf("title %q", title)
	}
	fetchedSpec := false
	for _, u := range requests {
		switch {
		case u == srv.URL+docs.SpecPath:
			fetchedSpec = true
		case strings.HasPrefix(u, srv.URL+"/"), strings.HasPrefix(u, "data:"), strings.HasPrefix(u, "blob:"):
		default:
			t.Errorf("the page loaded %s, which is not on its server", u)
		}
	}
	if !fetchedSpec {
		t.Errorf("the page never fetched %s; it fetched %q", docs.SpecPath, requests)
	}
	for _, p := range problems {
		t.Errorf("the browser reported %s", p)
	}
}
